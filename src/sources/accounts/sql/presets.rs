//! The mailbox query of each common mail stack, written from the stack's own schema and Dovecot
//! configuration (the trimmed schemas the tests load are in tests/fixtures/stores/, each citing
//! its source). Every query yields `email`, `password`, `suspended` (the login is disabled or
//! may not send), `owner` and `contact` (NULL where the stack has no such notion).

use super::Dialect;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Preset {
    /// Postfixadmin: `mailbox`, `domain`, `domain_admins` (MySQL/MariaDB or PostgreSQL); bare
    /// `$6$` from php_crypt; `active`, `smtp_active` (3.3+).
    Postfixadmin,
    /// Mailcow: `mailbox`, `domain`, `domain_admins` (MariaDB); `{BLF-CRYPT}`; `active` 1 (2:
    /// login disallowed).
    Mailcow,
    /// iRedMail (SQL): `mailbox`, `domain`, `domain_admins` (MariaDB or PostgreSQL); `{SSHA512}`;
    /// `active`, `enablesmtp`, the domain's `active` and `backupmx`.
    Iredmail,
    /// ISPConfig: `mail_user`, owner from `sys_group` and `client` (MariaDB); bare `$6$`;
    /// `disablesmtp` and the `mail_domain`'s `active`.
    Ispconfig,
    /// Mail-in-a-Box: `users` in `mail/users.sqlite`; `{SHA512-CRYPT}`.
    Mailinabox,
    /// Modoboa: `core_user` joined with `admin_mailbox` and `admin_domain` (PostgreSQL or
    /// MySQL); `{SHA512-CRYPT}`; `is_active`, the domain's `enabled`.
    Modoboa,
    /// Plesk: `mail`, `domains`, `accounts`, `clients` of the `psa` database (MySQL);
    /// `$AES-128-CBC$` (decrypted with `--plesk-secret-key`) or crypt; the domain's `status`.
    Plesk,
}

impl Preset {
    pub const ALL: [Preset; 7] = [
        Preset::Postfixadmin,
        Preset::Mailcow,
        Preset::Iredmail,
        Preset::Ispconfig,
        Preset::Mailinabox,
        Preset::Modoboa,
        Preset::Plesk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Postfixadmin => "postfixadmin",
            Preset::Mailcow => "mailcow",
            Preset::Iredmail => "iredmail",
            Preset::Ispconfig => "ispconfig",
            Preset::Mailinabox => "mailinabox",
            Preset::Modoboa => "modoboa",
            Preset::Plesk => "plesk",
        }
    }

    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The engines the stack runs on.
    fn dialects(self) -> &'static [Dialect] {
        use Dialect::*;
        match self {
            Preset::Postfixadmin | Preset::Iredmail | Preset::Modoboa => &[Postgres, Mysql],
            Preset::Mailcow | Preset::Ispconfig | Preset::Plesk => &[Mysql],
            Preset::Mailinabox => &[Sqlite],
        }
    }

    /// The stack's query for `dialect`.
    pub fn query(self, dialect: Dialect) -> Result<String> {
        if !self.dialects().contains(&dialect) {
            return Err(Error::Usage(format!(
                "--sql-preset {}: the stack keeps its mailboxes in {}, not {dialect:?}",
                self.name(),
                self.dialects()
                    .iter()
                    .map(|d| format!("{d:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        // The lowest domain admin (or else a superadmin, domain 'ALL') as owner and contact,
        // joined once per domain (a subquery per row would scan domain_admins per mailbox:
        // 1M mailboxes of 5000 domains took 560 s that way).
        let admins = |active: &str| {
            format!(
                "LEFT JOIN (SELECT domain, MIN(username) AS admin FROM domain_admins \
                 WHERE {active} GROUP BY domain) da ON da.domain = m.domain \
                 LEFT JOIN (SELECT MIN(username) AS admin FROM domain_admins \
                 WHERE domain = 'ALL' AND {active}) sa ON 1 = 1"
            )
        };
        let admin = "COALESCE(da.admin, sa.admin)";
        Ok(match self {
            Preset::Postfixadmin => format!(
                "SELECT m.username AS email, m.password AS password, \
                 CASE WHEN m.active AND m.smtp_active AND d.active THEN 0 ELSE 1 END AS suspended, \
                 {admin} AS owner, {admin} AS contact \
                 FROM mailbox m JOIN domain d ON d.domain = m.domain {}",
                admins("active")
            ),
            Preset::Mailcow => format!(
                "SELECT m.username AS email, m.password AS password, \
                 CASE WHEN m.active = 1 AND d.active = 1 THEN 0 ELSE 1 END AS suspended, \
                 {admin} AS owner, NULL AS contact \
                 FROM mailbox m JOIN domain d ON d.domain = m.domain {}",
                admins("active = 1")
            ),
            Preset::Iredmail => format!(
                "SELECT m.username AS email, m.password AS password, \
                 CASE WHEN m.active = 1 AND m.enablesmtp = 1 AND d.active = 1 AND d.backupmx = 0 \
                 THEN 0 ELSE 1 END AS suspended, {admin} AS owner, {admin} AS contact \
                 FROM mailbox m JOIN domain d ON d.domain = m.domain {}",
                admins("active = 1")
            ),
            Preset::Ispconfig => "SELECT u.email AS email, u.password AS password, \
                 CASE WHEN u.disablesmtp = 'n' AND COALESCE(md.active, 'y') = 'y' THEN 0 ELSE 1 END \
                 AS suspended, c.username AS owner, NULLIF(c.email, '') AS contact \
                 FROM mail_user u LEFT JOIN mail_domain md \
                 ON md.domain = SUBSTRING_INDEX(u.email, '@', -1) AND md.server_id = u.server_id \
                 LEFT JOIN sys_group g ON g.groupid = u.sys_groupid \
                 LEFT JOIN client c ON c.client_id = g.client_id"
                .into(),
            Preset::Mailinabox => "SELECT email AS email, password AS password, 0 AS suspended, \
                 NULL AS owner, NULL AS contact FROM users"
                .into(),
            Preset::Modoboa => "SELECT u.email AS email, u.password AS password, \
                 CASE WHEN u.is_active AND d.enabled THEN 0 ELSE 1 END AS suspended, \
                 NULL AS owner, NULL AS contact \
                 FROM core_user u JOIN admin_mailbox mb ON mb.user_id = u.id \
                 JOIN admin_domain d ON d.id = mb.domain_id"
                .into(),
            Preset::Plesk => "SELECT CONCAT(m.mail_name, '@', d.name) AS email, \
                 a.password AS password, CASE WHEN d.status = 0 THEN 0 ELSE 1 END AS suspended, \
                 c.login AS owner, NULLIF(c.email, '') AS contact \
                 FROM mail m JOIN domains d ON d.id = m.dom_id JOIN accounts a ON a.id = m.account_id \
                 LEFT JOIN clients c ON c.id = d.cl_id"
                .into(),
        })
    }

    /// Dovecot's `default_pass_scheme` in the stack's own configuration.
    pub fn default_scheme(self) -> &'static str {
        match self {
            Preset::Postfixadmin => "MD5-CRYPT",
            Preset::Mailcow => "BLF-CRYPT",
            Preset::Iredmail | Preset::Ispconfig | Preset::Plesk => "CRYPT",
            Preset::Mailinabox | Preset::Modoboa => "SHA512-CRYPT",
        }
    }
}
