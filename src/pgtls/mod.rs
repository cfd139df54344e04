//! Connecting to PostgreSQL with libpq's TLS semantics, for the shared state (`state_url`) and
//! the PostgreSQL account stores alike: one connector, so both read `sslmode` and `sslrootcert`
//! the way `psql` does with the same URL.
//!
//! The `postgres` crate knows `sslmode` `disable`, `prefer` and `require` only, and rejects
//! `verify-ca`, `verify-full` and `sslrootcert`; its `require` means whatever the TLS connector
//! does. So those two options are taken out of the URL (`split` in `url.rs`), the rest is parsed
//! by the crate, and the mode becomes the crate's `SslMode` plus a certificate verifier:
//!
//! | sslmode | TLS | certificate |
//! | --- | --- | --- |
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | if the server offers it | not checked |
//! | `require` | or fail | not checked; with `sslrootcert=PATH`, as `verify-ca` (libpq's documented compatibility rule) |
//! | `verify-ca` | or fail | signed by `sslrootcert` (default: the system's roots); any host name |
//! | `verify-full` | or fail | signed, and names the host connected to |
//!
//! `sslrootcert=system` (libpq 16) is the system's roots, and makes `verify-full` the default and
//! any weaker mode an error, as libpq does: anyone can get a publicly trusted certificate for a
//! name they control. Where libpq reads `~/.postgresql/root.crt` by default, this uses the
//! system's roots (a cron job's home is no place for a fleet's trust anchor). Over a unix socket
//! there is no TLS whatever the mode, as with libpq.
//!
//! TLS is rustls with the `ring` provider: no OpenSSL, and unlike `aws-lc-rs` (rustls's default)
//! `ring` needs no cmake or nasm and builds for old glibc targets. The `MakeTlsConnect` glue is
//! the `tokio-postgres-rustls` crate (it fits tokio-postgres 0.7 and rustls 0.23 and takes our
//! `ClientConfig`); only the verifiers are ours.

mod url;

pub(crate) use url::{ParseError, Target, parse};
use url::{Roots, SslMode};

use crate::error::chain;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// Why a connection failed.
#[derive(Debug)]
pub(crate) enum Failed {
    /// TLS: a sentence naming the sslmode, what went wrong and the likely fix.
    Tls(String),
    /// Anything else (refused, authentication, the server's words), as the crate gives it.
    Pg(postgres::Error),
}

impl Target {
    fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.effective() {
            SslMode::Disable | SslMode::Allow | SslMode::Prefer | SslMode::Require => {
                Arc::new(NoCheck(provider.signature_verification_algorithms))
            }
            m @ (SslMode::VerifyCa | SslMode::VerifyFull) => {
                let store = load_roots(&self.roots(), m)?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                    .build()
                    .map_err(|e| format!("TLS set-up: {e}"))?;
                if m == SslMode::VerifyCa {
                    Arc::new(AnyName(webpki))
                } else {
                    webpki
                }
            }
        };
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }

    /// Connect, TLS as the target says.
    pub(crate) fn connect(&self) -> Result<postgres::Client, Failed> {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
            self.client_config().map_err(Failed::Tls)?,
        );
        self.config.connect(tls).map_err(|e| self.explain(e))
    }

    /// A failure in words: TLS ones get the mode, the cause and the fix; the server's refusal of
    /// an unencrypted login gets a hint; the rest are the crate's.
    fn explain(&self, e: postgres::Error) -> Failed {
        let mode = self.effective();
        let says = if mode == self.mode {
            format!("sslmode={}", mode.name())
        } else {
            format!(
                "sslmode={} (with sslrootcert, checked as verify-ca)",
                self.mode.name()
            )
        };
        if let Some(db) = e.as_db_error() {
            if self.mode == SslMode::Disable && db.message().contains("no encryption") {
                return Failed::Tls(format!(
                    "{says}: the server takes this login over TLS only ({}): use sslmode=require or stronger",
                    db.message()
                ));
            }
            return Failed::Pg(e);
        }
        let Some(tls) = tls_cause(&e as &(dyn std::error::Error + 'static)) else {
            let text = chain(&e);
            if text.contains("server does not support TLS") {
                return Failed::Tls(format!(
                    "{says}: the server does not offer TLS: turn on `ssl` in its postgresql.conf, \
                     or use sslmode=prefer to connect without it"
                ));
            }
            return Failed::Pg(e);
        };
        let host = self.host();
        let roots = self.roots().describe();
        let why = match &tls {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => format!(
                    "the server's certificate is not signed by {roots}: give the CA that signed \
                     it (sslrootcert=PATH), or sslmode=require to encrypt without verifying"
                ),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => format!(
                    "the server's certificate does not name the host {host}: connect by a name \
                     it carries, or use sslmode=verify-ca to check only who signed it"
                ),
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => {
                    "the server's certificate is expired or not yet valid: renew it on the server \
                     (or check this machine's clock)"
                        .to_string()
                }
                _ => "the server's certificate was refused: check it, or sslmode=require to \
                      encrypt without verifying"
                    .to_string(),
            },
            _ => "the TLS handshake failed".to_string(),
        };
        Failed::Tls(format!("{says}: {why} ({tls})"))
    }

    /// The first host, for messages.
    fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        }
    }
}

/// The rustls error under a failure, from any crate (postgres, lettre, ldap3, mysql): they wrap
/// it in an `io::Error`, whose `source()` skips it, so each `io::Error` is looked inside with
/// `get_ref`.
pub(crate) fn tls_cause(e: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return Some(r.clone());
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                return Some(r.clone());
            }
            if let Some(r) = tls_cause(inner) {
                return Some(r);
            }
        }
        cur = c.source();
    }
    None
}

/// The fix for a certificate of an unknown CA on the paths that trust the system's roots.
pub(crate) const SYSTEM_TRUST_FIX: &str = "add its CA to the system's trust store \
     (update-ca-certificates / update-ca-trust), or point SSL_CERT_FILE at a PEM bundle that holds it";

/// What to do about a refused certificate: `trust_fix` is the fix when its CA is not trusted
/// ([`SYSTEM_TRUST_FIX`], or the path's CA option). `None` when the failure is not about the
/// certificate.
pub(crate) fn cert_fix(e: &rustls::Error, host: &str, trust_fix: &str) -> Option<String> {
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    Some(match c {
        CertificateError::UnknownIssuer => {
            format!("{host}'s certificate is not signed by a CA this machine trusts: {trust_fix}")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("{host}'s certificate does not name {host}: connect by a name it carries")
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => format!(
            "{host}'s certificate is expired or not yet valid: renew it on the server (or check \
             this machine's clock)"
        ),
        _ => format!("{host}'s certificate was refused: check it on the server"),
    })
}

/// A client config that checks the server's certificate against the system's roots and names
/// the host, on the project's provider (LDAP; lettre builds the same from its features).
pub(crate) fn verified_config() -> Result<rustls::ClientConfig, String> {
    let store = system_roots().map_err(|why| {
        format!(
            "no system root certificates found{why}: install ca-certificates (or point \
             SSL_CERT_FILE at a PEM bundle)"
        )
    })?;
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

/// The system's roots: rustls-native-certs reads the distribution's bundle, or `SSL_CERT_FILE`
/// / `SSL_CERT_DIR` when set. `Err` when none is usable: the loader's complaints, as
/// " (why; why)" or empty, for a sentence that gives the fix.
fn system_roots() -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    store.add_parsable_certificates(found.certs);
    if !store.is_empty() {
        return Ok(store);
    }
    let errs: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
    Err(if errs.is_empty() {
        String::new()
    } else {
        format!(" ({})", errs.join("; "))
    })
}

/// The roots to verify against: a PEM file, or the system's.
fn load_roots(roots: &Roots, mode: SslMode) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| {
                    format!(
                        "sslmode={}: sslrootcert={path}: cannot read it as PEM certificates ({e}): \
                         give the file of the CA that signed the server's certificate",
                        mode.name()
                    )
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslmode={}: sslrootcert={path}: no usable CA certificate in it: give the PEM \
                     file of the CA that signed the server's certificate",
                    mode.name()
                ));
            }
        }
        Roots::System => {
            store = system_roots().map_err(|why| {
                format!(
                    "sslmode={}: no system root certificates found{why}: install ca-certificates, \
                     or give sslrootcert=PATH with the CA that signed the server's certificate",
                    mode.name()
                )
            })?;
        }
    }
    Ok(store)
}

/// `prefer`/`require`: any certificate (libpq checks none), but the handshake's signatures are
/// still checked, so the session is at least with the holder of the certificate's key.
#[derive(Debug)]
struct NoCheck(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the standard verifier (chain, validity, usage), with a host-name mismatch, and
/// only that, accepted.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The project's one rustls crypto provider (PostgreSQL here, the range fetch in
/// `fetch::client`, SMTP, LDAP and MySQL through [`install_provider`]): ring. rustls 0.23.48 deprecates ring's provider to steer users to aws-lc-rs
/// (post-quantum key exchange); ring is the deliberate choice (see the module's first lines: no
/// cmake or nasm, builds for old glibc), and its TLS 1.3 with X25519 is what libpq itself
/// negotiates with PostgreSQL and what the range API's CDN accepts.
#[allow(deprecated)]
pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Make [`provider`] the process's default, for the crates that build their own rustls config
/// from it (reqwest, lettre, mysql). Installing twice is harmless: the first one stays.
pub(crate) fn install_provider() {
    let _ = provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_certificate_is_found_under_io_errors_and_named_with_its_fix() {
        let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        // As tokio-rustls and rustls's StreamOwned report it: an io::Error around it, itself
        // wrapped by the client crate.
        #[derive(Debug)]
        struct Client(std::io::Error);
        impl std::fmt::Display for Client {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("network error")
            }
        }
        impl std::error::Error for Client {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Client(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            tls.clone(),
        ));
        assert_eq!(tls_cause(&e), Some(tls.clone()));
        let fix = cert_fix(&tls, "mx.example", SYSTEM_TRUST_FIX).unwrap();
        assert!(
            fix.starts_with("mx.example's certificate is not signed by a CA this machine trusts")
                && fix.contains("SSL_CERT_FILE"),
            "{fix}"
        );
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(
            cert_fix(&name, "mx.example", "")
                .unwrap()
                .contains("does not name mx.example")
        );
        // Not about the certificate: no fix to offer, and no TLS cause in a plain io::Error.
        assert_eq!(cert_fix(&rustls::Error::DecryptError, "h", ""), None);
        assert_eq!(tls_cause(&std::io::Error::other("refused")), None);
    }
}
