//! The database a Dovecot already uses: `driver`, `connect` and `default_pass_scheme` of its
//! `dovecot-sql.conf.ext` (`key = value` lines, `\` continues a line, `#` comments), turned into a
//! URL so the credentials never pass through the command line. The file is the stack's own
//! (0640 root:dovecot on Debian): it may be group-readable, never world-readable.

use crate::error::{Error, IoContext, Result};
use std::path::Path;

/// (URL with its password, default scheme) of a dovecot-sql.conf.ext.
pub fn read(path: &Path) -> Result<(String, Option<String>)> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).at(path)?;
    if meta.permissions().mode() & 0o007 != 0 {
        return Err(Error::bad_input(
            path,
            "holds database credentials and is readable by everyone: chmod o-rwx it",
        ));
    }
    let text = std::fs::read_to_string(path).at(path)?;
    let settings = settings(&text);
    let get = |k: &str| {
        settings
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let bad = |what: &str| Error::bad_input(path, what.to_string());
    let driver = get("driver").ok_or_else(|| bad("no `driver =` line"))?;
    let connect = get("connect").ok_or_else(|| bad("no `connect =` line"))?;
    let url = match driver.as_str() {
        "sqlite" => format!("sqlite:{}", connect.trim()),
        "pgsql" | "mysql" => {
            let kv = connect_pairs(&connect);
            let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
            let host = get("host").unwrap_or("localhost");
            let user = enc(get("user").unwrap_or(""));
            let pass = get("password")
                .map(|p| format!(":{}", enc(p)))
                .unwrap_or_default();
            let db = get("dbname").ok_or_else(|| bad("`connect =` has no dbname="))?;
            let port = get("port").map(|p| format!(":{p}")).unwrap_or_default();
            if driver == "pgsql" {
                // libpq reads these from Dovecot's connect string; so does our connector.
                let tls: Vec<String> = ["sslmode", "sslrootcert"]
                    .iter()
                    .filter_map(|k| get(k).map(|v| format!("{k}={}", enc(v))))
                    .collect();
                let query = if tls.is_empty() {
                    String::new()
                } else {
                    format!("?{}", tls.join("&"))
                };
                format!(
                    "postgres://{user}{pass}@{}{port}/{}{query}",
                    enc(host),
                    enc(db)
                )
            } else if host.starts_with('/') {
                format!("mysql://{user}{pass}@localhost/{}?socket={host}", enc(db))
            } else {
                format!("mysql://{user}{pass}@{host}{port}/{}", enc(db))
            }
        }
        other => {
            return Err(bad(&format!(
                "driver {other}: breach-audit reads pgsql, mysql and sqlite"
            )));
        }
    };
    Ok((url, get("default_pass_scheme")))
}

/// `key = value` settings, continuation lines joined.
fn settings(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut line = String::new();
    for raw in text.lines() {
        let raw = raw.trim_end();
        if let Some(cont) = raw.strip_suffix('\\') {
            line.push_str(cont);
            line.push(' ');
            continue;
        }
        line.push_str(raw);
        let l = std::mem::take(&mut line);
        let l = l.trim();
        if l.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// `host=... dbname=... user=... password=...` (values may be single-quoted).
fn connect_pairs(connect: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = connect.trim();
    while let Some((k, v)) = rest.split_once('=') {
        let k = k.trim().to_string();
        let v = v.trim_start();
        let (value, after) = if let Some(q) = v.strip_prefix('\'') {
            q.split_once('\'').unwrap_or((q, ""))
        } else {
            v.split_once(char::is_whitespace).unwrap_or((v, ""))
        };
        out.push((k, value.to_string()));
        rest = after.trim_start();
    }
    out
}

/// Percent-encoding of everything but unreserved characters (RFC 3986), for a URL's user,
/// password, host path and database name.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_lines_become_urls() {
        let s = settings(
            "# iRedMail\ndriver = pgsql\nconnect = host=/run/postgresql port=5432 \\\n  dbname=vmail user=vmailadmin password='p@ss w:rd'\ndefault_pass_scheme = SSHA512\n",
        );
        assert_eq!(s[0], ("driver".into(), "pgsql".into()));
        let kv = connect_pairs(&s[1].1);
        assert_eq!(kv[4], ("password".into(), "p@ss w:rd".into()));
        assert_eq!(enc("p@ss w:rd"), "p%40ss%20w%3Ard");
    }

    #[test]
    fn tls_settings_of_a_pgsql_connect_line_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dovecot-sql.conf.ext");
        std::fs::write(
            &p,
            "driver = pgsql\nconnect = host=db.example dbname=mail user=vmail sslmode=verify-full sslrootcert='/etc/ssl/my ca.pem'\n",
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (url, _) = read(&p).unwrap();
        assert_eq!(
            url,
            "postgres://vmail@db.example/mail?sslmode=verify-full&sslrootcert=%2Fetc%2Fssl%2Fmy%20ca.pem"
        );
    }
}
