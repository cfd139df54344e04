//! Mailboxes read straight from a mail stack's SQL database, read-only: PostgreSQL (`postgres`),
//! MySQL/MariaDB (`mysql`) and SQLite (`rusqlite`), all synchronous drivers. (`postgres` runs a
//! private single-threaded tokio runtime inside its blocking client; no other async code.)
//!
//! A query yields the columns `email` and `password`, optionally `suspended` (boolean or 0/1),
//! `owner` and `contact`; [`presets`] holds the query of each stack. Rows stream in batches (memory
//! stays bounded whatever the table size); a domain filter is pushed into the query (`WHERE` on
//! the address's domain). Every connection is read-only: a `READ ONLY` transaction for the
//! servers, `SQLITE_OPEN_READ_ONLY` for SQLite. The URL's password (or the one read from
//! `--sql-password-file`) never appears in a message: sources are named by [`redact`]ed URLs.

pub mod dovecot_conf;
pub mod presets;

use super::{Account, ReadStats, Sink, Want};
use crate::email;
use crate::error::{Error, Result};
use crate::scheme::{self, Bare, Stored};
use std::path::{Path, PathBuf};

pub use presets::Preset;

/// Where and how to read one SQL store.
#[derive(Clone)]
pub struct SqlSource {
    /// `postgres://`, `mysql://` (or `mariadb://`), `sqlite:PATH`. May hold a password: never
    /// shown (see `redact`).
    pub url: String,
    /// A 0600 file whose first line is the password (instead of one in the URL).
    pub password_file: Option<PathBuf>,
    pub query: SqlQuery,
    /// Dovecot's `default_pass_scheme`: the scheme of passwords without a `{SCHEME}` prefix
    /// (crypt(3) when none).
    pub default_scheme: Option<String>,
    /// Plesk's `/etc/psa/private/secret_key`: decrypts `$AES-128-CBC$` passwords in memory.
    pub plesk_key: Option<PathBuf>,
}

impl std::fmt::Debug for SqlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSource")
            .field("url", &redact(&self.url))
            .field("query", &self.query)
            .field("default_scheme", &self.default_scheme)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
pub enum SqlQuery {
    Preset(Preset),
    Custom(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
    Sqlite,
}

impl SqlSource {
    /// A source for `url` (or, for `dovecot:PATH`, the database of that dovecot-sql.conf.ext)
    /// with a preset or a query.
    pub fn new(url: &str, query: SqlQuery) -> Result<SqlSource> {
        let (url, default_scheme) = match url.strip_prefix("dovecot:") {
            Some(conf) => dovecot_conf::read(Path::new(conf))?,
            None => (url.to_string(), None),
        };
        let default_scheme = default_scheme.or_else(|| match &query {
            SqlQuery::Preset(p) => Some(p.default_scheme().to_string()),
            SqlQuery::Custom(_) => None,
        });
        let s = SqlSource {
            url,
            password_file: None,
            query,
            default_scheme,
            plesk_key: None,
        };
        s.dialect()?;
        Ok(s)
    }

    pub fn dialect(&self) -> Result<Dialect> {
        let u = self.url.to_ascii_lowercase();
        if u.starts_with("postgres://") || u.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else if u.starts_with("mysql://") || u.starts_with("mariadb://") {
            Ok(Dialect::Mysql)
        } else if u.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else {
            Err(Error::Usage(format!(
                "--sql {}: expected postgres://, mysql:// or sqlite:PATH",
                redact(&self.url)
            )))
        }
    }

    /// The source as messages name it: the URL without its password.
    pub fn display(&self) -> String {
        redact(&self.url)
    }

    fn password(&self) -> Result<Option<String>> {
        (self.password_file.as_deref())
            .map(|p| crate::fsutil::read_private_line(p, "--sql-password-file"))
            .transpose()
    }

    /// The query to run, with the domain filter pushed into it when there is one.
    fn sql(&self, dialect: Dialect, domains: &[String]) -> Result<String> {
        let base = match &self.query {
            SqlQuery::Preset(p) => p.query(dialect)?,
            SqlQuery::Custom(q) => q.trim().trim_end_matches(';').to_string(),
        };
        if domains.is_empty() {
            return Ok(base);
        }
        let domain_of = match dialect {
            Dialect::Postgres => "lower(split_part(q.email, '@', 2))",
            Dialect::Mysql => "lower(substring_index(q.email, '@', -1))",
            Dialect::Sqlite => "lower(substr(q.email, instr(q.email, '@') + 1))",
        };
        let params: Vec<String> = (1..=domains.len())
            .map(|i| match dialect {
                Dialect::Postgres => format!("${i}"),
                _ => "?".to_string(),
            })
            .collect();
        Ok(format!(
            "SELECT * FROM ({base}) q WHERE {domain_of} IN ({})",
            params.join(", ")
        ))
    }
}

/// `scheme://user:password@host/...?params` without the password (and without the query
/// string, which may carry one).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, _)) => (r, "?..."),
        None => (rest, ""),
    };
    let rest = match rest.rsplit_once('@') {
        Some((auth, host)) => {
            let user = auth.split_once(':').map_or(auth, |(u, _)| u);
            format!("{user}@{host}")
        }
        None => rest.to_string(),
    };
    format!("{scheme}://{rest}{query}")
}

/// One row as the drivers give it.
pub(crate) struct RawRow {
    pub email: Option<Vec<u8>>,
    pub password: Option<Vec<u8>>,
    pub suspended: Option<bool>,
    pub owner: Option<String>,
    pub contact: Option<String>,
}

/// A cell of any of the drivers, for the columns whose type varies between stacks.
pub(crate) enum Cell {
    Null,
    Bytes(Vec<u8>),
    Int(i64),
    Bool(bool),
}

impl Cell {
    fn bytes(self) -> Option<Vec<u8>> {
        match self {
            Cell::Null => None,
            Cell::Bytes(b) => Some(b),
            Cell::Int(i) => Some(i.to_string().into_bytes()),
            Cell::Bool(b) => Some(b.to_string().into_bytes()),
        }
    }

    fn text(self) -> Option<String> {
        self.bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .filter(|s| !s.trim().is_empty())
    }

    /// true, t, y, yes, 1, any non-zero number.
    fn flag(self) -> Option<bool> {
        match self {
            Cell::Null => None,
            Cell::Bool(b) => Some(b),
            Cell::Int(i) => Some(i != 0),
            Cell::Bytes(b) => {
                let s = String::from_utf8_lossy(&b).trim().to_ascii_lowercase();
                Some(match s.as_str() {
                    "t" | "true" | "y" | "yes" => true,
                    "" | "f" | "false" | "n" | "no" => false,
                    n => n.parse::<i64>().map(|n| n != 0).unwrap_or(true),
                })
            }
        }
    }
}

/// Where the columns breach-audit reads stand in a result, resolved once per query.
#[derive(Clone, Copy)]
pub(crate) struct Columns {
    email: usize,
    password: usize,
    suspended: Option<usize>,
    owner: Option<usize>,
    contact: Option<usize>,
}

impl Columns {
    /// Find the columns by name; a query without `email` or `password` is an error naming the
    /// columns it does yield (a custom query that forgot `AS email`, say).
    pub(crate) fn find<'a>(
        names: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<Columns, String> {
        let at = |want: &str| names.clone().position(|n| n.eq_ignore_ascii_case(want));
        match (at("email"), at("password")) {
            (Some(email), Some(password)) => Ok(Columns {
                email,
                password,
                suspended: at("suspended"),
                owner: at("owner"),
                contact: at("contact"),
            }),
            _ => Err(format!(
                "the query must yield columns named email and password (use AS); it yields: {}",
                names.collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// A row from its cells (`cell(i)` reads column `i`).
    pub(crate) fn row(&self, mut cell: impl FnMut(usize) -> Cell) -> RawRow {
        RawRow {
            email: cell(self.email).bytes(),
            password: cell(self.password).bytes(),
            suspended: self.suspended.and_then(|i| cell(i).flag()),
            owner: self.owner.and_then(|i| cell(i).text()),
            contact: self.contact.and_then(|i| cell(i).text()),
        }
    }
}

/// Read the store, handing accounts of wanted domains to `sink`.
pub fn read(
    src: &SqlSource,
    domains: &[String],
    want: &Want,
    sink: &mut Sink,
) -> Result<ReadStats> {
    let dialect = src.dialect()?;
    let sql = src.sql(dialect, domains)?;
    let rows = Rows {
        src,
        plesk: src
            .plesk_key
            .as_deref()
            .map(super::plesk::SecretKey::read)
            .transpose()?,
        display: src.display(),
    };
    let mut out = ReadStats::default();
    let mut row_no = 0u64;
    let mut on_row = |r: RawRow| -> Result<()> {
        row_no += 1;
        crate::fsutil::check_interrupted()?;
        rows.emit(row_no, r, want, &mut out, sink)
    };
    let password = src.password()?;
    // What a driver's error text must not show: the password, and the URL as given.
    let in_url = src
        .url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p.to_string());
    let secrets: Vec<String> = password
        .iter()
        .cloned()
        .chain(in_url)
        .chain([src.url.clone()])
        .collect();
    match dialect {
        Dialect::Postgres => drivers::postgres(&src.url, password, &sql, domains, &mut on_row),
        Dialect::Mysql => drivers::mysql(&src.url, password, &sql, domains, &mut on_row),
        Dialect::Sqlite => drivers::sqlite(&src.url, &sql, domains, &mut on_row),
    }
    .map_err(|e| match e {
        drivers::Failed::Ours(e) => e,
        drivers::Failed::Driver(msg) => Error::Store {
            store: format!("--sql {}", rows.display),
            msg: crate::error::redact(
                &msg,
                &secrets.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
        },
    })?;
    Ok(out)
}

/// What every row of one store is read with.
struct Rows<'a> {
    src: &'a SqlSource,
    plesk: Option<super::plesk::SecretKey>,
    display: String,
}

impl Rows<'_> {
    fn emit(
        &self,
        row_no: u64,
        r: RawRow,
        want: &Want,
        out: &mut ReadStats,
        sink: &mut Sink,
    ) -> Result<()> {
        let at = Path::new(&self.display);
        let (Some(email), Some(password)) = (r.email, r.password) else {
            out.reject(at, row_no, "no email or no password (NULL)");
            return Ok(());
        };
        let email = match email::normalize(&email) {
            Ok(e) => e,
            Err(why) => {
                out.reject(at, row_no, why);
                return Ok(());
            }
        };
        if !want(email.domain()) {
            out.skipped += 1;
            return Ok(());
        }
        out.accounts += 1;
        sink.account(Account {
            email,
            stored: stored(self.src, self.plesk.as_ref(), &password),
            owner: r.owner,
            contact: r.contact,
            suspended: r.suspended.unwrap_or(false),
        })
    }
}

/// The stored password as Dovecot would read it with `default_pass_scheme`, Plesk's encrypted
/// ones decrypted when the key is given.
fn stored(src: &SqlSource, plesk: Option<&super::plesk::SecretKey>, password: &[u8]) -> Stored {
    let p = crate::bytes::trim_blanks(password);
    if p.starts_with(super::plesk::PREFIX) {
        return match plesk {
            Some(key) => match key.decrypt(p) {
                Some(plain) => Stored::Plain(plain),
                None => Stored::Unverifiable {
                    scheme: "PLESK-AES-128-CBC (malformed)".into(),
                    reason: scheme::Reason::Malformed,
                },
            },
            None => Stored::Unverifiable {
                scheme: "PLESK-AES-128-CBC".into(),
                reason: scheme::Reason::NeedsData,
            },
        };
    }
    match (&src.default_scheme, p.first()) {
        (Some(s), Some(c)) if *c != b'{' && !s.eq_ignore_ascii_case("CRYPT") => {
            scheme::parse(&[b"{", s.as_bytes(), b"}", p].concat(), Bare::Crypt)
        }
        _ => scheme::parse(p, Bare::Crypt),
    }
}

mod drivers {
    //! The three drivers, each streaming rows into a callback inside a read-only transaction.

    use super::{Cell, Columns, RawRow};

    pub(super) enum Failed {
        /// The driver's error text (it never contains the password).
        Driver(String),
        /// An error of ours raised in the callback.
        Ours(crate::error::Error),
    }

    type OnRow<'a> = dyn FnMut(RawRow) -> crate::error::Result<()> + 'a;

    use crate::error::chain;

    pub(super) fn postgres(
        url: &str,
        password: Option<String>,
        sql: &str,
        params: &[String],
        on_row: &mut OnRow,
    ) -> Result<(), Failed> {
        use postgres::fallible_iterator::FallibleIterator;
        use postgres::types::Type;
        let d = |e: postgres::Error| Failed::Driver(chain(&e));
        let mut target = crate::pgtls::parse(url).map_err(|e| match e {
            crate::pgtls::ParseError::Pg(e) => d(e),
            crate::pgtls::ParseError::Ours(m) => Failed::Driver(m),
        })?;
        if let Some(p) = password {
            target.config.password(p);
        }
        let mut client = target.connect().map_err(|e| match e {
            crate::pgtls::Failed::Tls(m) => Failed::Driver(m),
            crate::pgtls::Failed::Pg(e) => d(e),
        })?;
        let mut tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .map_err(d)?;
        let stmt = tx.prepare(sql).map_err(d)?;
        let cols =
            Columns::find(stmt.columns().iter().map(|c| c.name())).map_err(Failed::Driver)?;
        let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
        let mut rows = tx.query_raw(&stmt, params.iter()).map_err(d)?;
        while let Some(row) = rows.next().map_err(d)? {
            let cell = |i: usize| -> Cell {
                match types[i] {
                    Type::BOOL => row.get::<_, Option<bool>>(i).map_or(Cell::Null, Cell::Bool),
                    Type::INT2 => row
                        .get::<_, Option<i16>>(i)
                        .map_or(Cell::Null, |v| Cell::Int(v.into())),
                    Type::INT4 => row
                        .get::<_, Option<i32>>(i)
                        .map_or(Cell::Null, |v| Cell::Int(v.into())),
                    Type::INT8 => row.get::<_, Option<i64>>(i).map_or(Cell::Null, Cell::Int),
                    Type::BYTEA => row
                        .get::<_, Option<Vec<u8>>>(i)
                        .map_or(Cell::Null, Cell::Bytes),
                    _ => match row.try_get::<_, Option<String>>(i) {
                        Ok(v) => v.map_or(Cell::Null, |s| Cell::Bytes(s.into_bytes())),
                        Err(_) => Cell::Null,
                    },
                }
            };
            on_row(cols.row(cell)).map_err(Failed::Ours)?;
        }
        drop(rows);
        tx.rollback().map_err(d)
    }

    pub(super) fn mysql(
        url: &str,
        password: Option<String>,
        sql: &str,
        params: &[String],
        on_row: &mut OnRow,
    ) -> Result<(), Failed> {
        use mysql::prelude::Queryable;
        let d = |e: mysql::Error| Failed::Driver(e.to_string());
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        let opts = mysql::Opts::from_url(&url).map_err(|e| Failed::Driver(e.to_string()))?;
        let host = opts.get_ip_or_hostname().to_string();
        let mut opts = mysql::OptsBuilder::from_opts(opts);
        if let Some(p) = password {
            opts = opts.pass(Some(p));
        }
        // TLS (any of the URL's root_cert_path, danger_skip_domain_validation,
        // danger_accept_invalid_certs) is the crate's rustls on the project's provider (ring).
        crate::pgtls::install_provider();
        let mut conn = mysql::Conn::new(opts).map_err(|e| {
            let text = e.to_string();
            // The crate's error gives its cause through the deprecated `cause()` only.
            let cause = match &e {
                mysql::Error::IoError(io) => crate::pgtls::tls_cause(io),
                mysql::Error::TlsError(t) => crate::pgtls::tls_cause(t),
                mysql::Error::CodecError(c) => crate::pgtls::tls_cause(c),
                other => crate::pgtls::tls_cause(other),
            };
            let fix = cause.and_then(|t| {
                crate::pgtls::cert_fix(
                    &t,
                    &host,
                    "give root_cert_path=PATH in the URL, the PEM file of the CA that signed \
                     it (the mysql crate trusts that and Mozilla's roots, not the system's)",
                )
            });
            Failed::Driver(match fix {
                Some(fix) => format!("{text} ({fix})"),
                None => text,
            })
        })?;
        conn.query_drop("START TRANSACTION READ ONLY").map_err(d)?;
        let params: Vec<mysql::Value> = params.iter().map(|p| p.as_str().into()).collect();
        let params = if params.is_empty() {
            mysql::Params::Empty
        } else {
            mysql::Params::Positional(params)
        };
        {
            let mut result = conn.exec_iter(sql, params).map_err(d)?;
            let names: Vec<String> = (result.columns().as_ref().iter())
                .map(|c| c.name_str().into_owned())
                .collect();
            let cols = Columns::find(names.iter().map(String::as_str)).map_err(Failed::Driver)?;
            for row in result.by_ref() {
                let row = row.map_err(d)?;
                let cell = |i: usize| -> Cell {
                    match row.as_ref(i) {
                        None | Some(mysql::Value::NULL) => Cell::Null,
                        Some(mysql::Value::Bytes(b)) => Cell::Bytes(b.clone()),
                        Some(mysql::Value::Int(v)) => Cell::Int(*v),
                        Some(mysql::Value::UInt(v)) => Cell::Int(*v as i64),
                        Some(other) => Cell::Bytes(other.as_sql(true).into_bytes()),
                    }
                };
                on_row(cols.row(cell)).map_err(Failed::Ours)?;
            }
        }
        conn.query_drop("ROLLBACK").map_err(d)
    }

    pub(super) fn sqlite(
        url: &str,
        sql: &str,
        params: &[String],
        on_row: &mut OnRow,
    ) -> Result<(), Failed> {
        use rusqlite::types::ValueRef;
        let d = |e: rusqlite::Error| Failed::Driver(e.to_string());
        let path = url.strip_prefix("sqlite:").unwrap_or(url);
        let path = path.strip_prefix("//").unwrap_or(path);
        if !std::path::Path::new(path).is_file() {
            return Err(Failed::Driver(format!("{path}: no such database file")));
        }
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(d)?;
        let mut stmt = conn.prepare(sql).map_err(d)?;
        let cols = Columns::find(stmt.column_names().into_iter()).map_err(Failed::Driver)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(d)?;
        while let Some(row) = rows.next().map_err(d)? {
            let cell = |i: usize| -> Cell {
                match row.get_ref(i) {
                    Err(_) | Ok(ValueRef::Null) => Cell::Null,
                    Ok(ValueRef::Integer(v)) => Cell::Int(v),
                    Ok(ValueRef::Real(v)) => Cell::Bytes(v.to_string().into_bytes()),
                    Ok(ValueRef::Text(b) | ValueRef::Blob(b)) => Cell::Bytes(b.to_vec()),
                }
            };
            on_row(cols.row(cell)).map_err(Failed::Ours)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redact("postgres://vmail:s3cr3t@db.example:5432/vmail"),
            "postgres://vmail@db.example:5432/vmail"
        );
        assert_eq!(
            redact("mysql://root:p%40ss@localhost/psa?socket=/run/mysqld.sock"),
            "mysql://root@localhost/psa?..."
        );
        assert_eq!(
            redact("postgres://db.example/vmail?password=s3cr3t"),
            "postgres://db.example/vmail?..."
        );
        assert_eq!(
            redact("sqlite:/home/user-data/mail/users.sqlite"),
            "sqlite:/home/user-data/mail/users.sqlite"
        );
    }
}
