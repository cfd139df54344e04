//! One name, one server: each server records who it is under its name (`meta` key
//! `server_identity:NAME`, `server_identity` for one server alone) on its first run, in the run's
//! own transaction, and a second server that uses the name is refused before it changes anything.
//!
//! Without this, two servers given the same `server` name in a fleet (or a state directory copied
//! to another machine) each took the other's accounts for missing ones: every run came out
//! INCOMPLETE, and the hint to `forget` them would have retired the other server's real findings.
//!
//! Who a server is: the machine (`/etc/machine-id`, else `/var/lib/dbus/machine-id`, else the host
//! name) and the canonical path of its config (or of its state directory when it runs without
//! one): two configs on one machine sharing a name are two servers too. The host name is recorded
//! to name the machine in messages, not compared (it may be renamed). A machine that really
//! replaced another takes its name over with `breach-audit state claim`; each hand-over is kept in
//! the record (`previous`).

use crate::error::{Error, Result};
use crate::state::{Db, p};
use std::path::{Path, PathBuf};

/// Who this server is.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub machine_id: String,
    pub host: String,
    /// The config file, canonical (or the state directory, without a config).
    pub config: String,
}

/// A name's record: who holds it, since when, and who held it before.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    #[serde(flatten)]
    pub who: Identity,
    /// When the name was claimed (first run, or hand-over).
    pub since: String,
    /// Earlier holders, oldest first, each with when it was handed over (`until`).
    #[serde(default)]
    pub previous: Vec<serde_json::Value>,
}

/// Read instead of /etc/machine-id when set: the tests' way to be two machines on one. A test
/// hook, deliberately absent from `--help` and README.
const MACHINE_ID_FILE_ENV: &str = "BREACH_AUDIT_MACHINE_ID_FILE";

fn first_line(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.lines().next().unwrap_or("").trim().to_string())
        .filter(|s| !s.is_empty())
}

/// This machine's name.
fn host() -> String {
    first_line(Path::new("/proc/sys/kernel/hostname")).unwrap_or_else(|| "localhost".into())
}

impl Identity {
    /// This server: this machine, and `config` (or `state_dir` without one), canonical.
    pub fn here(config: Option<&Path>, state_dir: &Path) -> Identity {
        let host = host();
        let machine_id = match std::env::var_os(MACHINE_ID_FILE_ENV) {
            Some(f) => first_line(Path::new(&f)),
            None => first_line(Path::new("/etc/machine-id"))
                .or_else(|| first_line(Path::new("/var/lib/dbus/machine-id"))),
        }
        .unwrap_or_else(|| format!("host:{host}"));
        let place = config.unwrap_or(state_dir);
        let config = std::fs::canonicalize(place)
            .unwrap_or_else(|_| PathBuf::from(place))
            .display()
            .to_string();
        Identity {
            machine_id,
            host,
            config,
        }
    }

    /// The same server: the same machine and config (the host may have been renamed). `self`
    /// without a config (a command other than `audit`) is any config of its machine.
    fn same(&self, held: &Identity) -> bool {
        self.machine_id == held.machine_id && (self.config.is_empty() || self.config == held.config)
    }

    /// "machine 1a2b3c4d5e6f (host db1), config /etc/breach-audit/audit.toml".
    pub fn describe(&self) -> String {
        let short: String = self.machine_id.chars().take(12).collect();
        if self.config.is_empty() {
            format!("machine {short} (host {})", self.host)
        } else {
            format!(
                "machine {short} (host {}), config {}",
                self.host, self.config
            )
        }
    }
}

/// The `meta` key of `server`'s record.
pub(crate) fn key(server: &str) -> String {
    if server.is_empty() {
        "server_identity".into()
    } else {
        format!("server_identity:{server}")
    }
}

/// `server`'s record, if it was claimed.
pub(crate) fn claim_of(db: &Db, server: &str) -> Result<Option<Claim>> {
    let Some(r) = db.query_opt("SELECT value FROM meta WHERE key = ?1", p![key(server)])? else {
        return Ok(None);
    };
    let v: String = r.get(0)?;
    serde_json::from_str(&v).map(Some).map_err(|e| Error::State {
        path: db.label().to_path_buf(),
        msg: format!(
            "state database: meta {} is not a server identity ({e}); `breach-audit state claim` records this server's again",
            key(server)
        ),
    })
}

/// The refusal: `server`'s name is held by `held`, and `me` is someone else.
fn refusal(db: &Db, server: &str, held: &Claim, me: &Identity) -> Error {
    let name = if server.is_empty() {
        format!("this state ({})", db.label().display())
    } else {
        format!("the server name {server:?}")
    };
    let fix = if server.is_empty() {
        "if the state directory was copied here by mistake, give this server a state of its own; if this machine really replaced that one, take the state over with `breach-audit state claim` (same --config or --state)".to_string()
    } else if held.who.machine_id == me.machine_id {
        // The same machine under another config path: most often the config was moved or
        // renamed, which the advice about replaced machines does not name.
        "this is the same machine with another config: if the config was moved or renamed, hand the name over to the new one with `breach-audit state claim` (same --config); if it is a second server, give it its own name (`server = \"...\"` in its config)".to_string()
    } else {
        "give this server its own name (`server = \"...\"` in its config: each server its own); if this machine really replaced that one, hand the name over with `breach-audit state claim` (same --config)".to_string()
    };
    Error::State {
        path: db.label().to_path_buf(),
        msg: format!(
            "{name} belongs to another server: {}, since {}; this is {}. Nothing was changed. Fix: {fix}",
            held.who.describe(),
            held.since,
            me.describe()
        ),
    }
}

/// Refuse `me` when `server`'s name is held by another server. One server alone (no name: a
/// SQLite state in its own directory) is its machine: another config of it (renamed, or a
/// second one for `suspend`) is the same server; a copy of the state on another machine is not.
pub(crate) fn check(db: &Db, server: &str, me: &Identity) -> Result<()> {
    match refused(db, server, me)? {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The refusal [`check`] would give, if any: a long-running `serve` asks again at each write,
/// so a name handed over with `state claim` while it runs stops it.
pub(crate) fn refused(db: &Db, server: &str, me: &Identity) -> Result<Option<Error>> {
    Ok(match claim_of(db, server)? {
        Some(held) if server.is_empty() && me.machine_id != held.who.machine_id => {
            Some(refusal(db, server, &held, me))
        }
        Some(held) if !server.is_empty() && !me.same(&held.who) => {
            Some(refusal(db, server, &held, me))
        }
        _ => None,
    })
}

/// Record `me` under `server`'s name if nobody holds it yet (in the caller's transaction), and
/// refuse when someone else does (a second server that ran first in the same night).
pub(crate) fn record(db: &Db, server: &str, me: &Identity, now: &str) -> Result<()> {
    let claim = Claim {
        who: me.clone(),
        since: now.to_string(),
        previous: Vec::new(),
    };
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        p![
            key(server),
            serde_json::to_string(&claim).unwrap_or_default()
        ],
    )?;
    check(db, server, me)
}

/// Hand `server`'s name to `me` (`state claim`), keeping who held it; the previous holder, if
/// another server.
pub(crate) fn hand_over(db: &Db, server: &str, me: &Identity, now: &str) -> Result<Option<Claim>> {
    let old = claim_of(db, server)?;
    if let Some(o) = &old
        && me.same(&o.who)
    {
        return Ok(None);
    }
    let mut previous = old.as_ref().map(|o| o.previous.clone()).unwrap_or_default();
    if let Some(o) = &old {
        let mut v = serde_json::to_value(&o.who).unwrap_or_default();
        v["since"] = o.since.clone().into();
        v["until"] = now.into();
        previous.push(v);
    }
    let claim = Claim {
        who: me.clone(),
        since: now.to_string(),
        previous,
    };
    db.set_meta(
        &key(server),
        &serde_json::to_string(&claim).unwrap_or_default(),
    )?;
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(m: &str, c: &str, h: &str) -> Identity {
        Identity {
            machine_id: m.into(),
            host: h.into(),
            config: c.into(),
        }
    }

    #[test]
    fn a_name_is_held_by_its_first_server_until_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::sqlite(&dir.path().join("x.sqlite")).unwrap();
        db.batch("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            .unwrap();
        let a = id("aaaaaaaaaaaaaaaaaaaa", "/etc/a.toml", "one");
        let b = id("bbbbbbbbbbbbbbbbbbbb", "/etc/a.toml", "two");
        record(&db, "london", &a, "2024-01-01T00:00:00Z").unwrap();
        // The same machine renamed is the same server; the other machine is not.
        check(
            &db,
            "london",
            &id("aaaaaaaaaaaaaaaaaaaa", "/etc/a.toml", "renamed"),
        )
        .unwrap();
        check(&db, "london", &id("aaaaaaaaaaaaaaaaaaaa", "", "one")).unwrap();
        let e = record(&db, "london", &b, "2024-01-02T00:00:00Z")
            .unwrap_err()
            .to_string();
        assert!(e.contains("machine aaaaaaaaaaaa (host one)"), "{e}");
        assert!(e.contains("machine bbbbbbbbbbbb (host two)"), "{e}");
        assert!(e.contains("since 2024-01-01T00:00:00Z"), "{e}");
        assert!(e.contains("state claim"), "{e}");
        // Another name is free; one config elsewhere on the same machine is another server.
        record(&db, "paris", &b, "2024-01-02T00:00:00Z").unwrap();
        assert!(
            check(
                &db,
                "london",
                &id("aaaaaaaaaaaaaaaaaaaa", "/etc/b.toml", "one")
            )
            .is_err()
        );
        let old = hand_over(&db, "london", &b, "2024-01-03T00:00:00Z").unwrap();
        assert_eq!(old.unwrap().who, a);
        check(&db, "london", &b).unwrap();
        assert!(check(&db, "london", &a).is_err());
        let now = claim_of(&db, "london").unwrap().unwrap();
        assert_eq!(now.previous.len(), 1);
        assert_eq!(now.previous[0]["machine_id"], "aaaaaaaaaaaaaaaaaaaa");
        assert_eq!(now.previous[0]["until"], "2024-01-03T00:00:00Z");
        assert!(
            hand_over(&db, "london", &b, "2024-01-04T00:00:00Z")
                .unwrap()
                .is_none()
        );
        // One server alone: its machine, whatever its config.
        record(&db, "", &a, "2024-01-01T00:00:00Z").unwrap();
        check(
            &db,
            "",
            &id("aaaaaaaaaaaaaaaaaaaa", "/etc/other.toml", "one"),
        )
        .unwrap();
        assert!(check(&db, "", &id("bbbbbbbbbbbbbbbbbbbb", "/etc/a.toml", "one")).is_err());
    }
}
