//! How a message leaves: the server's own MTA (`sendmail`: Exim on DirectAdmin/cPanel, Postfix
//! elsewhere), a submission server (`smtp`: STARTTLS or TLS, AUTH with credentials read from a
//! 0600 file), or an `outbox` directory for another mailer (one `.eml` per message, delivered once
//! fsynced and renamed into place). lettre does the protocol work.

use crate::error::chain;
use crate::error::{Error, IoContext, Result};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SendmailTransport, SmtpTransport, Transport as _};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Which transport.
#[derive(Clone, Copy, Debug, Deserialize, serde::Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Sendmail,
    Smtp,
    Outbox,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Sendmail => "sendmail",
            Via::Smtp => "smtp",
            Via::Outbox => "outbox",
        }
    }
}

/// TLS for the smtp transport.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// STARTTLS, required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// None: only for a server on this machine or a test sink.
    None,
}

/// A ready transport, with what it delivers to (every delivery error names it).
pub enum Transport {
    /// The sendmail program's path.
    Sendmail(SendmailTransport, PathBuf),
    /// `host:port`.
    Smtp(Box<SmtpTransport>, String),
    Outbox(PathBuf),
}

/// The smtp transport's settings.
pub struct SmtpSettings<'a> {
    pub host: &'a str,
    pub port: Option<u16>,
    pub tls: SmtpTls,
    pub credentials: Option<&'a Path>,
}

impl Transport {
    pub fn sendmail(path: &Path) -> Transport {
        Transport::Sendmail(
            SendmailTransport::new_with_command(path.as_os_str()),
            path.to_path_buf(),
        )
    }

    pub fn outbox(dir: &Path) -> Result<Transport> {
        crate::fsutil::create_private_dir(dir)?;
        Ok(Transport::Outbox(dir.to_path_buf()))
    }

    pub fn smtp(s: &SmtpSettings) -> Result<Transport> {
        // rustls on the project's provider (ring); lettre checks the certificate against the
        // system's roots (rustls-native-certs) and the name `smtp_host`.
        crate::pgtls::install_provider();
        let tls_params = || {
            TlsParameters::new(s.host.into())
                .map_err(|e| Error::Usage(format!("smtp {}: TLS: {e}", s.host)))
        };
        let (tls, port) = match s.tls {
            SmtpTls::Starttls => (Tls::Required(tls_params()?), 587),
            SmtpTls::Tls => (Tls::Wrapper(tls_params()?), 465),
            SmtpTls::None => (Tls::None, 25),
        };
        let port = s.port.unwrap_or(port);
        let mut b = SmtpTransport::builder_dangerous(s.host)
            .port(port)
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(30)));
        if let Some(path) = s.credentials {
            b = b.credentials(read_credentials(path)?);
        }
        Ok(Transport::Smtp(
            Box::new(b.build()),
            format!("{}:{port}", s.host),
        ))
    }

    /// What this transport delivers to, as errors name it: `smtp HOST:PORT`, `sendmail PATH`,
    /// `outbox DIR`.
    pub fn target(&self) -> String {
        match self {
            Transport::Sendmail(_, path) => format!("sendmail {}", path.display()),
            Transport::Smtp(_, addr) => format!("smtp {addr}"),
            Transport::Outbox(dir) => format!("outbox {}", dir.display()),
        }
    }

    /// Hand `msg` over; `Ok` means the transport accepted it. `name` names the outbox file.
    /// An error names the target and the whole cause, on one line without trailing blanks (it is
    /// stored as the notice's `last_error`).
    pub fn send(&self, msg: &Message, name: &str) -> std::result::Result<(), String> {
        let sent = match self {
            Transport::Sendmail(t, _) => t.send(msg).map(|_| ()).map_err(|e| chain(&e)),
            Transport::Smtp(t, addr) => t.send(msg).map(|_| ()).map_err(|e| smtp_error(&e, addr)),
            Transport::Outbox(dir) => {
                let path = dir.join(format!("{name}.eml"));
                let write = || -> Result<()> {
                    let mut f = crate::fsutil::AtomicFile::create(&path)?;
                    std::io::Write::write_all(&mut f, &msg.formatted()).at(&path)?;
                    f.commit()
                };
                write().map_err(|e| chain(&e))
            }
        };
        sent.map_err(|why| format!("{}: {why}", self.target()))
    }
}

/// An SMTP failure in words: the whole cause, and for a refused certificate what to do.
fn smtp_error(e: &lettre::transport::smtp::Error, addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let fix = crate::pgtls::tls_cause(e)
        .and_then(|t| crate::pgtls::cert_fix(&t, host, crate::pgtls::SYSTEM_TRUST_FIX));
    match fix {
        Some(fix) => format!("{} ({fix})", chain(e)),
        None => chain(e),
    }
}

/// SMTP credentials from a file only its owner can read: the user name on the first line, the
/// password on the second. Never from the command line.
fn read_credentials(path: &Path) -> Result<Credentials> {
    let text = crate::fsutil::read_private(path, "SMTP credentials")?;
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(u), Some(p)) if !u.trim().is_empty() => {
            Ok(Credentials::new(u.trim().to_string(), p.to_string()))
        }
        _ => Err(Error::bad_input(
            path,
            "expected the user name on the first line and the password on the second",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_is_one_trimmed_line_with_every_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = Error::io("/x", io);
        assert_eq!(chain(&e), "/x: Connection refused");
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Connection error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("refused\nby the peer\n"));
        assert_eq!(chain(&e), "Connection error: refused by the peer");
    }
}
