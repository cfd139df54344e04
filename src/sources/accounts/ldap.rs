//! Mailboxes read from an LDAP directory (iRedMail's LDAP backend, Zimbra, hand-made OpenLDAP
//! trees) with `ldap3`'s synchronous client (it runs a private tokio runtime inside; no other
//! async code). `ldap://` (optionally upgraded with StartTLS), `ldaps://` or `ldapi://`; a simple
//! bind with a password from a 0600 file, or anonymous. Results are paged (RFC 2696, 500 per
//! page) and streamed in batches: memory stays bounded for any directory. The address is the
//! `mail` attribute and the hash `userPassword` (both configurable); `accountStatus` (iRedMail)
//! or `zimbraAccountStatus` other than `active` marks the login suspended. A domain filter
//! becomes part of the LDAP filter. Unprefixed passwords are crypt(3), Dovecot's LDAP default.

use super::{Account, ReadStats, Sink, Want};
use crate::email;
use crate::error::{Error, Result};
use crate::scheme::{self, Bare};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct LdapSource {
    pub url: String,
    pub base: String,
    /// The entries to read (default `(&(mail=*)(userPassword=*))`).
    pub filter: Option<String>,
    pub bind_dn: Option<String>,
    /// A 0600 file whose first line is the bind password.
    pub password_file: Option<PathBuf>,
    pub starttls: bool,
    pub mail_attr: String,
    pub password_attr: String,
}

/// Attributes whose value other than `active` means the login is disabled.
const STATUS_ATTRS: [&str; 2] = ["accountStatus", "zimbraAccountStatus"];

impl LdapSource {
    pub fn new(url: &str, base: &str) -> LdapSource {
        LdapSource {
            url: url.to_string(),
            base: base.to_string(),
            filter: None,
            bind_dn: None,
            password_file: None,
            starttls: false,
            mail_attr: "mail".into(),
            password_attr: "userPassword".into(),
        }
    }

    /// The source as messages name it.
    pub fn display(&self) -> String {
        format!("{} {}", super::sql::redact(&self.url), self.base)
    }

    /// The LDAP filter, with the domain filter ANDed in.
    fn ldap_filter(&self, domains: &[String]) -> String {
        // RFC 4515 wants the parentheses; `objectClass=mailUser` as typed gets them.
        let base = match self.filter.as_deref().map(str::trim) {
            Some(f) if f.starts_with('(') => f.to_string(),
            Some(f) => format!("({f})"),
            None => format!("(&({}=*)({}=*))", self.mail_attr, self.password_attr),
        };
        if domains.is_empty() {
            return base;
        }
        // Normalised domains hold only letters, digits, '-' and '.': nothing to escape.
        let any: String = domains
            .iter()
            .map(|d| format!("({}=*@{d})", self.mail_attr))
            .collect();
        format!("(&{base}(|{any}))")
    }
}

/// Read the directory, handing accounts of wanted domains to `sink`.
pub fn read(
    src: &LdapSource,
    domains: &[String],
    want: &Want,
    sink: &mut Sink,
) -> Result<ReadStats> {
    use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
    use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry};
    let display = src.display();
    let password = (src.password_file.as_deref())
        .map(|p| crate::fsutil::read_private_line(p, "--ldap-password-file"))
        .transpose()?;
    let host = ldap_host(&src.url);
    let fail = |e: ldap3::LdapError| {
        let mut msg = e.to_string();
        if let Some(fix) = crate::pgtls::tls_cause(&e)
            .and_then(|t| crate::pgtls::cert_fix(&t, &host, crate::pgtls::SYSTEM_TRUST_FIX))
        {
            msg = format!("{msg} ({fix})");
        }
        Error::Store {
            store: format!("--ldap {display}"),
            msg: crate::error::redact(&msg, &[password.as_deref().unwrap_or_default()]),
        }
    };
    let mut settings = LdapConnSettings::new()
        .set_starttls(src.starttls)
        .set_conn_timeout(std::time::Duration::from_secs(30));
    // StartTLS and ldaps:// on rustls with the project's provider (ring), the certificate
    // checked against the system's roots and the URL's host name.
    if src.starttls || src.url.to_ascii_lowercase().starts_with("ldaps://") {
        let config = crate::pgtls::verified_config().map_err(|msg| Error::Store {
            store: format!("--ldap {display}"),
            msg,
        })?;
        settings = settings.set_config(std::sync::Arc::new(config));
    }
    let mut ldap = LdapConn::with_settings(settings, &src.url).map_err(fail)?;
    if let Some(dn) = &src.bind_dn {
        ldap.simple_bind(dn, password.as_deref().unwrap_or(""))
            .and_then(|r| r.success())
            .map_err(fail)?;
    }
    let mut attrs = vec![src.mail_attr.clone(), src.password_attr.clone()];
    attrs.extend(STATUS_ATTRS.map(String::from));
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(500)),
    ];
    let filter = src.ldap_filter(domains);
    let mut search = ldap
        .streaming_search_with(adapters, &src.base, Scope::Subtree, &filter, attrs)
        .map_err(fail)?;
    let mut out = ReadStats::default();
    let mut n = 0u64;
    while let Some(entry) = search.next().map_err(fail)? {
        n += 1;
        crate::fsutil::check_interrupted()?;
        let entry = crate::guard::guarded_as(
            || Ok(SearchEntry::construct(entry)),
            || {
                Error::Usage(format!(
                    "--ldap {display}: entry {n} is not valid LDAP (BER)"
                ))
            },
        )?;
        emit_entry(src, &display, n, &entry, want, &mut out, sink)?;
    }
    search.result().success().map_err(fail)?;
    let _ = ldap.unbind();
    Ok(out)
}

/// The host of an `ldap://` or `ldaps://` URL, for messages (the URL whole when it has none).
fn ldap_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6).to_string(),
        None => authority.split(':').next().unwrap_or(authority).to_string(),
    }
}

fn emit_entry(
    src: &LdapSource,
    display: &str,
    n: u64,
    e: &ldap3::SearchEntry,
    want: &Want,
    out: &mut ReadStats,
    sink: &mut Sink,
) -> Result<()> {
    let at = Path::new(display);
    let values = |attr: &str| -> Vec<Vec<u8>> {
        let text = e
            .attrs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
            .flat_map(|(_, v)| v.iter().map(|s| s.as_bytes().to_vec()));
        let bin = e
            .bin_attrs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
            .flat_map(|(_, v)| v.iter().cloned());
        text.chain(bin).collect()
    };
    let (mails, passwords) = (values(&src.mail_attr), values(&src.password_attr));
    let Some(mail) = mails.first().filter(|_| !passwords.is_empty()) else {
        out.reject(at, n, "entry without a mail address or a password");
        return Ok(());
    };
    let email = match email::normalize(mail) {
        Ok(e) => e,
        Err(why) => {
            out.reject(at, n, why);
            return Ok(());
        }
    };
    if !want(email.domain()) {
        out.skipped += 1;
        return Ok(());
    }
    let suspended = STATUS_ATTRS.iter().any(|a| {
        values(a)
            .first()
            .is_some_and(|v| !v.eq_ignore_ascii_case(b"active"))
    });
    // Several userPassword values: an LDAP bind accepts any of them, so each is judged (the
    // findings of one address are merged into one record).
    out.accounts += 1;
    for password in &passwords {
        sink.account(Account {
            email: email.clone(),
            stored: scheme::parse(password, Bare::Crypt),
            owner: None,
            contact: None,
            suspended,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ldap_host;

    #[test]
    fn the_host_of_an_ldap_url() {
        assert_eq!(ldap_host("ldap://dir.example"), "dir.example");
        assert_eq!(ldap_host("ldaps://dir.example:636/"), "dir.example");
        assert_eq!(ldap_host("ldap://[::1]:389"), "::1");
        assert_eq!(ldap_host("ldap://u@127.0.0.1:3890/x?y"), "127.0.0.1");
    }
}
