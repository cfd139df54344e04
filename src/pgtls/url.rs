//! Reading a PostgreSQL connection string the way libpq does ([`parse`]): `sslmode` and
//! `sslrootcert` taken out ([`split`]: URL query parameters or `key=value` with libpq's quoting),
//! since the `postgres` crate rejects `verify-ca`, `verify-full` and `sslrootcert`; the rest
//! parsed by the crate; the mode mapped to the crate's `SslMode` and the certificate check that
//! [`super`] builds its TLS config from (the table in [`super`]).

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

    pub(super) fn name(self) -> &'static str {
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
pub(super) enum Roots {
    System,
    File(String),
}

impl Roots {
    pub(super) fn describe(&self) -> String {
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
    pub(super) mode: SslMode,
    pub(super) roots: Option<Roots>,
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

impl Target {
    /// What checks the certificate: `require` with a root file is `verify-ca`, libpq's
    /// documented rule ("if a root CA file exists, sslmode=require behaves as verify-ca").
    pub(super) fn effective(&self) -> SslMode {
        match (&self.mode, &self.roots) {
            (SslMode::Require, Some(Roots::File(_))) => SslMode::VerifyCa,
            (m, _) => *m,
        }
    }

    pub(super) fn roots(&self) -> Roots {
        self.roots.clone().unwrap_or(Roots::System)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
