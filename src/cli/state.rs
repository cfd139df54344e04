//! `state`: the state database itself. `state migrate` moves a server's SQLite state into a
//! fleet's shared PostgreSQL state, once (the engine: `src/state/migrate.rs`). `state claim`
//! hands a server name over to this machine (`src/state/identity.rs`).

use super::Exit;
use super::args::{Config, ConfigArg, StateArgs};
use crate::error::{Error, Result};
use crate::state::{State, StateAt};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct StateCmd {
    #[command(subcommand)]
    cmd: StateSub,
}

#[derive(Subcommand)]
enum StateSub {
    /// Move this server's SQLite state (--from DIR: DIR/breach-audit.sqlite) into the fleet's
    /// shared PostgreSQL state (--to URL) as server --server, once.
    ///
    /// Everything is copied in one transaction of the shared database, under --from's lock (no
    /// audit, notify or suspend of this server runs meanwhile): findings (merged with the same
    /// address and finding from other servers: unresolved if either is, the earliest first
    /// seen and told of the episode still open), notices with new ids, runs, suspensions, held
    /// addresses, homes and suspension problems under the server's name, login verdicts, hash
    /// marks (when the shared state's mark key is this state's or absent; otherwise skipped,
    /// and said) and meta (per-server keys named for the server). The shared state records
    /// `migrated:NAME` (when and from where): a second migrate of the same name is refused.
    /// A server that already audited into the shared state is refused too. Prints one line per
    /// table (rows copied) and the config lines to add; --from's SQLite file stays as a
    /// backup, marked migrated (a `serve` still writing to it stops, and `audit` on it refuses,
    /// naming the shared state). Defaults come from --config: `state` for --from, `state_url`,
    /// `state_password_file` and `server`. Exit codes: 0 migrated, 2 error (nothing changed:
    /// PostgreSQL unreachable, already migrated, bad options), 3 an audit, notify or suspend
    /// holds --from's lock.
    Migrate(MigrateArgs),
    /// Hand this server's name (the config's `server`; the state itself for one server alone)
    /// over to this machine and config, when this machine really replaced the one that held it.
    ///
    /// Each server records who it is under its name on its first audit: the machine
    /// (/etc/machine-id, else /var/lib/dbus/machine-id, else the host name) and its config's
    /// path (the state directory without --config). Another machine or config using the name
    /// (two servers given one `server`, a state directory copied elsewhere) is refused by
    /// audit (another machine also by serve, notify, suspend and forget), exit 2, naming both;
    /// nothing is changed. This
    /// command makes this machine and config the name's holder (the old one is then refused)
    /// and keeps who held it before and until when (`meta` key `server_identity:NAME`). Its
    /// runs, homes, held addresses and suspensions become this server's. Do not use it to let
    /// two running servers share a name: give the second its own `server = "..."`. Prints who
    /// held the name. Exit codes: 0 claimed (or already this server's), 2 error, 3 an audit,
    /// notify or suspend holds the state directory's lock.
    Claim(ClaimArgs),
    /// Set up a fleet's shared PostgreSQL state for per-server roles, as its owner: the schema
    /// steps, then the group roles `ba_servers` and `ba_fleet`, the `server_roles` table, the
    /// `SECURITY DEFINER` functions, row-level security and the grants. Idempotent: run it
    /// again after every upgrade (other roles never change the schema; they refuse a schema
    /// behind theirs, exit 2). The owner needs CREATEROLE. Exit codes: 0 done, 2 error.
    Init(InitArgs),
    /// Give server SERVER its own database role (`ba_SERVER`, created unless it exists, LOGIN,
    /// a member of `ba_servers`; its row in `server_roles`), or with --fleet make ROLE a fleet
    /// role (a member of `ba_fleet`: `notify` and `report`). Run as the owner, after `state
    /// init`. No password is taken or set here (none on a command line, none in the server's
    /// log): set it with psql's `\password ROLE` (hashed by psql) and put it, one line, in a
    /// 0600 file on that server named by `state_password_file`. Prints the config lines. Exit
    /// codes: 0 done, 2 error.
    Grant(GrantArgs),
    /// Rename server OLD to NEW in the state, with its whole history: its runs, homes, held
    /// addresses, suspensions, suspension problems, login verdicts, hash marks, the moves from
    /// and to it, and its own `meta` keys (its identity record included), in one transaction.
    ///
    /// Run it on the server being renamed (the machine holding OLD's name), with its config
    /// (whose `server` is OLD or already NEW), while its timer is stopped; then set
    /// `server = "NEW"` in its config (if not done yet) and restart `serve`. Findings and
    /// notices are keyed by address and customer, not by server: nobody is told again, and
    /// suspensions stay in force under the new name. Refused, nothing changed, when NEW is in
    /// use (rows or a claim under it), OLD is unknown, or OLD is held by another machine.
    /// Prints the rows renamed per table. Exit codes: 0 renamed, 2 error, 3 an audit, notify
    /// or suspend holds the state directory's lock.
    RenameServer(RenameArgs),
}

#[derive(Args)]
pub(crate) struct RenameArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    state: StateArgs,
    /// The server's name now.
    #[arg(value_name = "OLD")]
    old: String,
    /// Its new name (letters, digits, '-', '_' and '.').
    #[arg(value_name = "NEW")]
    new: String,
}

#[derive(Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The shared state, postgres://OWNER@HOST/DB (default: the config's `state_url`).
    #[arg(long, value_name = "URL")]
    state_url: Option<String>,
    /// A 0600 file whose first line is the owner's password (default: the config's
    /// `state_password_file`).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct GrantArgs {
    #[command(flatten)]
    init: InitArgs,
    /// Make ROLE (the positional name) a fleet role instead of a server's.
    #[arg(long)]
    fleet: bool,
    /// The server's name (its config's `server`), or with --fleet the role's name.
    #[arg(value_name = "SERVER")]
    name: String,
}

#[derive(Args)]
pub(crate) struct ClaimArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    state: StateArgs,
}

#[derive(Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The state directory whose breach-audit.sqlite is moved (default: the config's `state`).
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// The shared state, postgres://USER@HOST/DB (default: the config's `state_url`). No
    /// password here: it comes from --password-file.
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// This server's name in the shared state (default: the config's `server`). Required.
    #[arg(long, value_name = "NAME")]
    server: Option<String>,
    /// A 0600 file whose first line is the password of --to's user (default: the config's
    /// `state_password_file`).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

pub(crate) fn run(a: StateCmd) -> Result<Exit> {
    match a.cmd {
        StateSub::Migrate(m) => migrate(m),
        StateSub::Claim(c) => claim(c),
        StateSub::RenameServer(r) => rename_server(r),
        StateSub::Init(i) => init(i),
        StateSub::Grant(g) => grant(g),
    }
}

/// A password in a PostgreSQL URL: in its user part (`user:pw@`) or as a `password=` parameter.
fn holds_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = before_query.split('/').next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
        || query.split('&').any(|kv| {
            kv.split('=')
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("password"))
        })
}

/// A TOML string.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn migrate(a: MigrateArgs) -> Result<Exit> {
    let file: StateArgs = Config::open(&a.config)?.file()?;
    let from = a.from.or(file.state.map(PathBuf::from)).ok_or_else(|| {
        Error::Usage(
            "state migrate needs --from DIR, the SQLite state's directory (or `state = ...` in --config)".into(),
        )
    })?;
    let to = a.to.or(file.state_url).ok_or_else(|| {
        Error::Usage(
            "state migrate needs --to postgres://USER@HOST/DB, the shared state (or `state_url = ...` in --config)".into(),
        )
    })?;
    if holds_password(&to) {
        return Err(Error::Usage(format!(
            "--to {}: the URL holds a password; put it in a 0600 file named by --password-file (or `state_password_file` in --config) instead",
            crate::sources::accounts::sql::redact(&to)
        )));
    }
    let server = a.server.or(file.server).filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::Usage(
            "state migrate needs --server NAME, this server's name in the shared state (or `server = \"NAME\"` in --config): the SQLite rows are recorded under it".into(),
        )
    })?;
    let password_file = a
        .password_file
        .or(file.state_password_file.map(PathBuf::from));
    // The same checks as every command's state_url and server (postgres:// only, the name's
    // characters).
    let target: StateAt = StateArgs {
        state: Some(from.clone().into()),
        state_url: Some(to.clone()),
        state_password_file: password_file.clone().map(Into::into),
        server: Some(server.clone()),
        state_keep: None,
    }
    .need("state migrate")?;
    let source = StateAt::dir(&from);
    if !source.exists() {
        return Err(Error::bad_input(
            &from,
            format!(
                "holds no SQLite state ({} is missing): nothing to migrate",
                crate::state::DB_FILE
            ),
        ));
    }
    // The shared state first: unreachable, or this server migrated already, and nothing of
    // --from was opened.
    let dst = State::open_at(&target)?;
    crate::state::refuse_if_migrated(&dst)?;
    let done = crate::audit::with_state(&source, |src| crate::state::migrate_state(src, &dst))?;
    let Some(m) = done else {
        eprintln!(
            "breach-audit: an audit, notify or suspend is running ({} is locked); nothing migrated",
            from.join("lock").display()
        );
        return Ok(Exit::Locked);
    };
    for t in &m.tables {
        if t.detail.is_empty() {
            println!("{}: {} copied", t.table, t.copied);
        } else {
            println!("{}: {} copied ({})", t.table, t.copied, t.detail);
        }
    }
    println!(
        "# this server's config: add these lines at the top, before its first [section] (they are top-level keys: below a [section] header they would belong to it); keep `state`: the lock and the verification cache stay there"
    );
    println!("state_url = {}", toml_str(&to));
    if let Some(p) = &password_file {
        println!(
            "state_password_file = {}",
            toml_str(&p.display().to_string())
        );
    }
    println!("server = {}", toml_str(&m.server));
    eprintln!(
        "breach-audit: state migrate: {} copied into {} as server {} (recorded there as migrated:{} at {}); {} is left as it was, a backup: audits use the shared state once the config has the lines above",
        m.from,
        m.to,
        m.server,
        m.server,
        m.at,
        from.join(crate::state::DB_FILE).display()
    );
    Ok(Exit::Clean)
}

fn claim(a: ClaimArgs) -> Result<Exit> {
    // Not `for_this_server`: the name's current holder must not refuse its own hand-over.
    let at = Config::open(&a.config)?
        .merge(a.state)?
        .need("state claim")?;
    let me = crate::state::Identity::here(a.config.config.as_deref(), &at.dir);
    let name = if at.server.is_empty() {
        format!("the state in {}", at.dir.display())
    } else {
        format!("server name {:?}", at.server)
    };
    let Some(old) = crate::audit::with_state(&at, |st| st.claim_name(&me))? else {
        eprintln!(
            "breach-audit: an audit, notify or suspend is running ({} is locked); nothing changed",
            at.dir.join("lock").display()
        );
        return Ok(Exit::Locked);
    };
    match old {
        None => println!("{name}: held by this server ({})", me.describe()),
        Some(old) => println!(
            "{name}: handed over to this server ({}); held before by {}, since {} (kept in the state's record)",
            me.describe(),
            old.who.describe(),
            old.since
        ),
    }
    Ok(Exit::Clean)
}

fn rename_server(a: RenameArgs) -> Result<Exit> {
    let at = Config::open(&a.config)?
        .merge(a.state)?
        .need("state rename-server")?;
    if at.server != a.old && at.server != a.new {
        return Err(Error::Usage(format!(
            "state rename-server {} {}: run it with the config of the server being renamed (its `server` is {:?}, neither name)",
            a.old, a.new, at.server
        )));
    }
    // NEW's characters, by the same rule as every config's `server`.
    super::args::check_server_name(&a.new)?;
    let me = crate::state::Identity::here(a.config.config.as_deref(), &at.dir);
    let Some(done) = crate::audit::with_state(&at, |st| st.rename_server(&a.old, &a.new, &me))?
    else {
        eprintln!(
            "breach-audit: an audit, notify or suspend is running ({} is locked); nothing renamed",
            at.dir.join("lock").display()
        );
        return Ok(Exit::Locked);
    };
    for r in &done {
        println!("{}: {} renamed", r.what, r.rows);
    }
    eprintln!(
        "breach-audit: server {:?} is now {:?}; set `server = {:?}` in its config if it is not yet, and restart its `serve`",
        a.old, a.new, a.new
    );
    Ok(Exit::Clean)
}

/// The owner's open of --state-url (or the config's).
fn open_owner(a: InitArgs, cmd: &str) -> Result<(State, String)> {
    let file: StateArgs = Config::open(&a.config)?.file()?;
    let url = a.state_url.or(file.state_url).ok_or_else(|| {
        Error::Usage(format!(
            "{cmd} needs --state-url postgres://OWNER@HOST/DB (or `state_url = ...` in --config)"
        ))
    })?;
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
        return Err(Error::Usage(format!(
            "{cmd}: --state-url must be postgres://...: roles are for a shared PostgreSQL state"
        )));
    }
    if holds_password(&url) {
        return Err(Error::Usage(format!(
            "--state-url {}: the URL holds a password; put it in a 0600 file named by --password-file instead",
            crate::sources::accounts::sql::redact(&url)
        )));
    }
    let pw = a
        .password_file
        .or(file.state_password_file.map(PathBuf::from));
    Ok((State::open_owner(&url, pw.as_deref())?, url))
}

fn init(a: InitArgs) -> Result<Exit> {
    let (st, _) = open_owner(a, "state init")?;
    st.init_roles()?;
    println!(
        "{}: schema and roles set up (server roles: `breach-audit state grant SERVER`; notify and report: `state grant --fleet ROLE`)",
        st.path().display()
    );
    Ok(Exit::Clean)
}

/// The URL with its user replaced by `role`.
fn url_as(url: &str, role: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{role}@{host}{tail}")
}

fn grant(g: GrantArgs) -> Result<Exit> {
    let name = g.name.clone();
    if name.is_empty() {
        return Err(Error::Usage(
            "state grant needs a server's name (or --fleet ROLE)".into(),
        ));
    }
    super::args::check_server_name(&name)?;
    let (st, url) = open_owner(g.init, "state grant")?;
    let role = if g.fleet {
        st.grant_fleet(&name)?;
        name.clone()
    } else {
        st.grant_server(&name)?
    };
    let what = if g.fleet {
        "notify and report".to_string()
    } else {
        format!("server {name}'s audit, serve, suspend and forget")
    };
    println!(
        "# {what}: set the role's password with psql's `\\password {role}` (as the owner; psql hashes it), put it alone on the first line of a 0600 file on that server, and add these lines at the top of its config"
    );
    println!("state_url = {}", toml_str(&url_as(&url, &role)));
    println!("state_password_file = \"/etc/breach-audit/state.pw\"");
    if !g.fleet {
        println!("server = {}", toml_str(&name));
    }
    Ok(Exit::Clean)
}

#[cfg(test)]
mod tests {
    use super::holds_password;

    #[test]
    fn a_password_anywhere_in_the_url_is_found() {
        for url in [
            "postgres://ledger:pw@db/ledger",
            "postgresql://ledger:@db/ledger",
            "postgres://ledger@db/ledger?sslmode=require&password=pw",
            "postgres://ledger@db/ledger?PASSWORD=pw",
        ] {
            assert!(holds_password(url), "{url}");
        }
        for url in [
            "postgres://ledger@db/ledger",
            "postgres://ledger@%2Frun%2Fpostgresql/ledger?sslmode=require",
            "postgres://ledger@db:5432/ledger",
            "postgres://ledger@db/ledger?application_name=a:b@c",
        ] {
            assert!(!holds_password(url), "{url}");
        }
    }
}
