//! Connecting to PostgreSQL with libpq's TLS semantics, for the shared state (`state_url`) and
//! the PostgreSQL account stores alike: one connector, so both read `sslmode` and `sslrootcert`
//! the way `psql` does with the same URL.
//!
//! The `postgres` crate knows `sslmode` `disable`, `prefer` and `require` only, and rejects
//! `verify-ca`, `verify-full` and `sslrootcert`; its `require` means whatever the TLS connector
//! does. So those two options are taken out of the URL here ([`split`]), the rest is parsed by
//! the crate, and the mode becomes the crate's `SslMode` plus a certificate verifier:
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

use crate::error::chain;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted roots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Roots {
    System,
    File(String),
}

impl Roots {
    fn describe(&self) -> String {
        match self {
            Roots::System => "the system's roots".into(),
            Roots::File(p) => format!("sslrootcert={p}"),
        }
    }
}

/// A connection string with `sslmode` and `sslrootcert` taken out (the rest for the crate).
#[derive(Debug, PartialEq, Eq)]
struct Split {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

/// Take `sslmode` and `sslrootcert` out of a `postgres://` URL (query parameters,
/// percent-decoded) or a `key=value` string (libpq's quoting). The last one given wins, as in
/// libpq. A string this cannot read is passed whole, for the crate to explain.
fn split(url: &str) -> Split {
    let mut out = Split {
        rest: url.to_string(),
        sslmode: None,
        sslrootcert: None,
    };
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return out;
        };
        let mut kept = Vec::new();
        for kv in query.split('&') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            match dec(k).as_str() {
                "sslmode" => out.sslmode = Some(dec(v)),
                "sslrootcert" => out.sslrootcert = Some(dec(v)),
                _ => kept.push(kv),
            }
        }
        out.rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return out;
    }
    // key = value pairs, separated by white space; a value is 'quoted' (\' and \\ inside) or
    // runs to the next white space (with \ escapes), as libpq and the crate read them.
    let b: Vec<char> = url.chars().collect();
    let mut i = 0;
    let mut kept = String::new();
    let (mut mode, mut root) = (None, None);
    while i < b.len() {
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let start = i;
        while i < b.len() && !b[i].is_whitespace() && b[i] != '=' {
            i += 1;
        }
        let key: String = b[start..i].iter().collect();
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        if i == b.len() || b[i] != '=' {
            return out;
        }
        i += 1;
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == '\'' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return out,
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') if i + 1 < b.len() => {
                        value.push(b[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !b[i].is_whitespace() {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
        }
        match key.as_str() {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => {
                if !kept.is_empty() {
                    kept.push(' ');
                }
                kept.extend(&b[start..i]);
            }
        }
    }
    Split {
        rest: kept,
        sslmode: mode,
        sslrootcert: root,
    }
}

/// What [`connect`] is given: the crate's config, and how TLS is to be checked.
pub(crate) struct Target {
    pub(crate) config: postgres::Config,
    mode: SslMode,
    roots: Option<Roots>,
}

/// Read a connection string: the crate's config (its own errors as the crate words them) and
/// the TLS policy. `Err` is a sentence for the operator.
pub(crate) fn parse(url: &str) -> Result<Target, ParseError> {
    let s = split(url);
    let mut config: postgres::Config = s.rest.parse().map_err(ParseError::Pg)?;
    let roots = match s.sslrootcert.as_deref() {
        None | Some("") => None,
        Some("system") => Some(Roots::System),
        Some(p) => Some(Roots::File(p.to_string())),
    };
    let mode = match s.sslmode.as_deref() {
        None | Some("") if roots == Some(Roots::System) => SslMode::VerifyFull,
        None | Some("") => SslMode::Prefer,
        Some(m) => SslMode::parse(m).ok_or_else(|| {
            ParseError::Ours(format!(
                "sslmode={m}: expected disable, allow, prefer, require, verify-ca or verify-full"
            ))
        })?,
    };
    if roots == Some(Roots::System) && mode != SslMode::VerifyFull {
        return Err(ParseError::Ours(format!(
            "sslrootcert=system needs sslmode=verify-full, not sslmode={} (as libpq 16 insists: \
             anyone can get a certificate the system trusts for a name they control); give \
             sslmode=verify-full, or sslrootcert=PATH with your own CA",
            mode.name()
        )));
    }
    // libpq never negotiates TLS over a unix socket, whatever sslmode says.
    let all_unix = !config.get_hosts().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, postgres::config::Host::Unix(_)));
    config.ssl_mode(match mode {
        _ if all_unix => postgres::config::SslMode::Disable,
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Allow | SslMode::Prefer => postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            postgres::config::SslMode::Require
        }
    });
    Ok(Target {
        config,
        mode,
        roots,
    })
}

/// Why a connection string was not taken.
#[derive(Debug)]
pub(crate) enum ParseError {
    /// The crate's own complaint about the rest of the string.
    Pg(postgres::Error),
    /// Ours, about sslmode or sslrootcert.
    Ours(String),
}

/// Why a connection failed.
#[derive(Debug)]
pub(crate) enum Failed {
    /// TLS: a sentence naming the sslmode, what went wrong and the likely fix.
    Tls(String),
    /// Anything else (refused, authentication, the server's words), as the crate gives it.
    Pg(postgres::Error),
}

impl Target {
    /// What checks the certificate: `require` with a root file is `verify-ca`, libpq's
    /// documented rule ("if a root CA file exists, sslmode=require behaves as verify-ca").
    fn effective(&self) -> SslMode {
        match (&self.mode, &self.roots) {
            (SslMode::Require, Some(Roots::File(_))) => SslMode::VerifyCa,
            (m, _) => *m,
        }
    }

    fn roots(&self) -> Roots {
        self.roots.clone().unwrap_or(Roots::System)
    }

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

    #[test]
    fn url_loses_only_sslmode_and_sslrootcert() {
        let s = split(
            "postgres://u@h:5433/db?application_name=x&sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        );
        assert_eq!(
            s.rest,
            "postgres://u@h:5433/db?application_name=x&connect_timeout=3"
        );
        assert_eq!(s.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        let s = split("postgresql://u@h/db?sslmode=require");
        assert_eq!(s.rest, "postgresql://u@h/db");
        assert_eq!(s.sslmode.as_deref(), Some("require"));
        let s = split("postgres://u@h/db");
        assert_eq!((s.rest.as_str(), s.sslmode), ("postgres://u@h/db", None));
    }

    #[test]
    fn key_value_strings_keep_their_quoting() {
        let s =
            split("host=db user='a b' sslmode = verify-full sslrootcert='/x/my ca.pem' dbname=l");
        assert_eq!(s.rest, "host=db user='a b' dbname=l");
        assert_eq!(s.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/x/my ca.pem"));
        // The last one given wins, as in libpq.
        let s = split("host=db sslmode=disable sslmode=require");
        assert_eq!(s.sslmode.as_deref(), Some("require"));
    }

    #[test]
    fn modes_map_as_libpq_documents() {
        let t = parse("postgres://u@h/db").unwrap();
        assert_eq!(t.mode, SslMode::Prefer);
        assert_eq!(t.config.get_ssl_mode(), postgres::config::SslMode::Prefer);
        let t = parse("postgres://u@h/db?sslmode=verify-full").unwrap();
        assert_eq!(t.config.get_ssl_mode(), postgres::config::SslMode::Require);
        let t = parse("postgres://u@h/db?sslmode=allow").unwrap();
        assert_eq!(t.config.get_ssl_mode(), postgres::config::SslMode::Prefer);
        // require with a root file checks the chain (libpq's compatibility rule).
        let t = parse("postgres://u@h/db?sslmode=require&sslrootcert=/x.pem").unwrap();
        assert_eq!(t.effective(), SslMode::VerifyCa);
        assert_eq!(
            parse("postgres://u@h/db?sslmode=require")
                .unwrap()
                .effective(),
            SslMode::Require
        );
        // sslrootcert=system: verify-full by default, weaker refused.
        let t = parse("postgres://u@h/db?sslrootcert=system").unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
        let Err(ParseError::Ours(m)) =
            parse("postgres://u@h/db?sslrootcert=system&sslmode=verify-ca")
        else {
            panic!("verify-ca with system roots accepted")
        };
        assert!(m.contains("sslmode=verify-full"), "{m}");
        let Err(ParseError::Ours(m)) = parse("postgres://u@h/db?sslmode=verify_full") else {
            panic!("a misspelt mode accepted")
        };
        assert!(
            m.contains("verify_full") && m.contains("verify-full"),
            "{m}"
        );
        // No TLS over a unix socket, whatever the mode (libpq's rule).
        let t = parse("postgres://u@%2Frun%2Fpostgresql/db?sslmode=verify-full").unwrap();
        assert_eq!(t.config.get_ssl_mode(), postgres::config::SslMode::Disable);
    }
}
