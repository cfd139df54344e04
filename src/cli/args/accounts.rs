//! Where accounts come from (shared by `check` and `audit`): server trees, files, SQL stores and
//! LDAP directories, from flags or the config's `[[sql]]` and `[[ldap]]` tables.

use crate::config::ConfigPath;
use crate::error::{Error, Result};
use crate::sources::accounts::AccountSource;
use crate::sources::accounts::ldap::LdapSource;
use crate::sources::accounts::sql::{Preset, SqlQuery, SqlSource};
use clap::Args;
use std::path::PathBuf;

crate::options! {
    /// Where accounts come from (shared by `check` and `audit`).
    #[derive(Args, serde::Deserialize, serde::Serialize, Default)]
    pub(crate) struct AccountArgs {
        /// The root of a DirectAdmin server tree (or a copy of its files):
        /// etc/virtual/<domain>/passwd, owners from etc/virtual/domainowners, contacts from
        /// usr/local/directadmin/data/users/<owner>/user.conf. Repeatable.
        #[arg(long, value_name = "ROOT")]
        #[serde(default)]
        pub(crate) directadmin: Vec<ConfigPath>,
        /// The root of a cPanel server tree (or a copy of its files):
        /// home/<user>/etc/<domain>/shadow, owners from etc/userdomains, contacts from
        /// var/cpanel/users/<owner>. Repeatable.
        #[arg(long, value_name = "ROOT")]
        #[serde(default)]
        pub(crate) cpanel: Vec<ConfigPath>,
        /// A Dovecot passwd-file (user@domain:{SCHEME}hash:...). Repeatable.
        #[arg(long, value_name = "PATH")]
        #[serde(default)]
        pub(crate) passwd_file: Vec<ConfigPath>,
        /// A CSV export with a header naming an email column and a hash column (email,hash; the
        /// separator may be `,`, `;`, tab or `|`): hash is 40-hex SHA-1, 32-hex NTLM, or a
        /// Dovecot {SCHEME}... string. Repeatable.
        #[arg(long, value_name = "PATH")]
        #[serde(default)]
        pub(crate) accounts_csv: Vec<ConfigPath>,
        /// One database from the flags (more: `[[sql]]` tables in the config, used as well).
        #[command(flatten)]
        #[serde(skip)]
        pub(crate) sql: SqlArgs,
        /// The config's `[[sql]]` tables: url, preset or query, password_file, default_scheme,
        /// plesk_secret_key.
        #[arg(skip)]
        #[serde(default, rename = "sql")]
        pub(crate) sql_tables: Vec<SqlArgs>,
        /// One directory from the flags (more: `[[ldap]]` tables in the config, used as well).
        #[command(flatten)]
        #[serde(skip)]
        pub(crate) ldap: LdapArgs,
        /// The config's `[[ldap]]` tables: url, base, filter, bind_dn, password_file, starttls,
        /// mail_attr, password_attr.
        #[arg(skip)]
        #[serde(default, rename = "ldap")]
        pub(crate) ldap_tables: Vec<LdapArgs>,
    }
}

crate::options! {
    /// One LDAP directory from the command line (several: `[[ldap]]` tables in the audit config).
    #[derive(Args, Default, serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct LdapArgs {
        /// An LDAP directory holding mailboxes (iRedMail, Zimbra, OpenLDAP): ldap://HOST[:PORT],
        /// ldaps://HOST, or ldapi://PATH-ESCAPED-SOCKET; read with paged searches.
        #[arg(long = "ldap", value_name = "URL", requires = "ldap_base")]
        #[serde(rename = "url")]
        pub(crate) ldap: Option<String>,
        /// The base DN to search under (e.g. o=domains,dc=example,dc=com).
        #[arg(long, value_name = "DN", requires = "ldap")]
        #[serde(rename = "base")]
        pub(crate) ldap_base: Option<String>,
        /// The LDAP filter of mailbox entries (default: (&(mail=*)(userPassword=*))).
        #[arg(long, value_name = "FILTER", requires = "ldap")]
        #[serde(rename = "filter")]
        pub(crate) ldap_filter: Option<String>,
        /// Bind as this DN (default: anonymous), with the password of --ldap-password-file.
        #[arg(long, value_name = "DN", requires = "ldap")]
        #[serde(rename = "bind_dn")]
        pub(crate) ldap_bind_dn: Option<String>,
        /// A file only its owner can read (0600) whose first line is the bind password.
        #[arg(long, value_name = "PATH", requires = "ldap_bind_dn")]
        #[serde(rename = "password_file")]
        pub(crate) ldap_password_file: Option<ConfigPath>,
        /// Upgrade an ldap:// connection with StartTLS.
        #[arg(long, requires = "ldap")]
        #[serde(default, rename = "starttls")]
        pub(crate) ldap_starttls: bool,
        /// The attribute holding the address (default mail).
        #[arg(long, value_name = "ATTR", requires = "ldap")]
        #[serde(rename = "mail_attr")]
        pub(crate) ldap_mail_attr: Option<String>,
        /// The attribute holding the password hash (default userPassword).
        #[arg(long, value_name = "ATTR", requires = "ldap")]
        #[serde(rename = "password_attr")]
        pub(crate) ldap_password_attr: Option<String>,
    }
}

impl LdapArgs {
    pub(crate) fn into_source(self) -> Option<AccountSource> {
        let url = self.ldap?;
        let mut l = LdapSource::new(&url, self.ldap_base.as_deref().unwrap_or(""));
        l.filter = self.ldap_filter;
        l.bind_dn = self.ldap_bind_dn;
        l.password_file = self.ldap_password_file.map(PathBuf::from);
        l.starttls = self.ldap_starttls;
        if let Some(a) = self.ldap_mail_attr {
            l.mail_attr = a;
        }
        if let Some(a) = self.ldap_password_attr {
            l.password_attr = a;
        }
        Some(AccountSource::Ldap(l))
    }
}

/// A database URL; `sqlite:PATH` and `dovecot:PATH` name files, relative to the config file's
/// directory when they come from there.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub(crate) struct SqlUrl(pub(crate) String);

impl std::str::FromStr for SqlUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<SqlUrl, Self::Err> {
        Ok(SqlUrl(s.to_string()))
    }
}

impl<'de> serde::Deserialize<'de> for SqlUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let url = String::deserialize(d)?;
        for scheme in ["sqlite:", "dovecot:"] {
            if let Some(path) = url.strip_prefix(scheme) {
                let path = crate::config::rebase(PathBuf::from(path));
                return Ok(SqlUrl(format!("{scheme}{}", path.display())));
            }
        }
        Ok(SqlUrl(url))
    }
}

crate::options! {
    /// One SQL store from the command line (several: `[[sql]]` tables in the audit config).
    #[derive(Args, Default, serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct SqlArgs {
        /// A mail stack's database, read read-only: postgres://USER@HOST[:PORT]/DB (a socket
        /// directory as HOST: %2Frun%2Fpostgresql), mysql://USER@HOST/DB (a socket:
        /// ?socket=PATH), sqlite:PATH, or dovecot:PATH to use the driver, connect string and
        /// default scheme of a Dovecot dovecot-sql.conf.ext. Give passwords with
        /// --sql-password-file, not in the URL. PostgreSQL's TLS as libpq reads it
        /// (?sslmode=...&sslrootcert=PATH).
        #[arg(long = "sql", value_name = "URL")]
        #[serde(rename = "url")]
        pub(crate) sql: Option<SqlUrl>,
        /// The stack whose schema and rules to use: postfixadmin, mailcow, iredmail, ispconfig,
        /// mailinabox, modoboa, plesk (see README "Account sources").
        #[arg(long, value_name = "STACK", requires = "sql")]
        #[serde(rename = "preset")]
        pub(crate) sql_preset: Option<String>,
        /// Instead of a preset: a SELECT yielding the columns email and password, optionally
        /// suspended (boolean or 0/1), owner and contact.
        #[arg(
            long,
            value_name = "SELECT",
            requires = "sql",
            conflicts_with = "sql_preset"
        )]
        #[serde(rename = "query")]
        pub(crate) sql_query: Option<String>,
        /// A file only its owner can read (0600) whose first line is the database password.
        #[arg(long, value_name = "PATH", requires = "sql")]
        #[serde(rename = "password_file")]
        pub(crate) sql_password_file: Option<ConfigPath>,
        /// The scheme of passwords stored without a {SCHEME} prefix, as Dovecot's
        /// default_pass_scheme (default: the preset's, else crypt(3)).
        #[arg(long, value_name = "SCHEME", requires = "sql")]
        pub(crate) default_scheme: Option<String>,
        /// Plesk's /etc/psa/private/secret_key (0600): its $AES-128-CBC$ passwords are
        /// decrypted in memory, looked up in the dumps and compared with the leaked ones; never
        /// written anywhere.
        #[arg(long, value_name = "PATH", requires = "sql")]
        pub(crate) plesk_secret_key: Option<ConfigPath>,
    }
}

impl SqlArgs {
    pub(crate) fn into_source(self) -> Result<Option<AccountSource>> {
        let Some(SqlUrl(url)) = self.sql else {
            return Ok(None);
        };
        let query = match (self.sql_preset, self.sql_query) {
            (Some(p), None) => SqlQuery::Preset(Preset::from_name(&p).ok_or_else(|| {
                Error::Usage(format!(
                    "--sql-preset {p}: expected one of {}",
                    Preset::ALL.map(Preset::name).join(", ")
                ))
            })?),
            (None, Some(q)) => SqlQuery::Custom(q),
            _ => {
                return Err(Error::Usage(
                    "--sql needs --sql-preset STACK or --sql-query SELECT".into(),
                ));
            }
        };
        let mut s = SqlSource::new(&url, query)?;
        s.password_file = self.sql_password_file.map(PathBuf::from);
        if self.default_scheme.is_some() {
            s.default_scheme = self.default_scheme;
        }
        s.plesk_key = self.plesk_secret_key.map(PathBuf::from);
        Ok(Some(AccountSource::Sql(s)))
    }
}

impl AccountArgs {
    /// The sources, in a fixed order: trees first, then files, then databases (the flags' one,
    /// then the config's tables) and directories.
    pub(crate) fn into_sources(self) -> Result<Vec<AccountSource>> {
        let paths = |v: Vec<ConfigPath>| v.into_iter().map(PathBuf::from);
        let mut v: Vec<AccountSource> = paths(self.directadmin)
            .map(AccountSource::DirectAdmin)
            .collect();
        v.extend(paths(self.cpanel).map(AccountSource::Cpanel));
        v.extend(paths(self.passwd_file).map(AccountSource::PasswdFile));
        v.extend(paths(self.accounts_csv).map(AccountSource::Csv));
        for s in std::iter::once(self.sql).chain(self.sql_tables) {
            v.extend(s.into_source()?);
        }
        for l in std::iter::once(self.ldap).chain(self.ldap_tables) {
            v.extend(l.into_source());
        }
        Ok(v)
    }
}
