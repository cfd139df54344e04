//! `state rename-server OLD NEW`: a server's name changes (a host renamed, a naming scheme
//! changed) and its history goes with it, in one transaction: its runs, homes, held addresses,
//! suspensions, suspension problems, login verdicts, hash marks and resets, the moves from and to
//! it, its own `meta` keys (`KEY:OLD`, its identity record included) and, on a fleet with
//! per-server roles, its role's row. Refused, with nothing changed, when NEW is in use (rows or a
//! claim under it), when OLD is unknown, or when OLD is held by another machine.

use super::{State, identity, p};
use crate::error::{Error, Result};
use crate::state::Identity;

/// The columns that name a server, by table.
const SERVER_COLUMNS: &[(&str, &str)] = &[
    ("runs", "server"),
    ("homes", "server"),
    ("held", "server"),
    ("suspensions", "server"),
    ("suspend_problems", "server"),
    ("logins", "server"),
    ("hash_marks", "server"),
    ("login_resets", "server"),
    ("moves", "from_server"),
    ("moves", "to_server"),
];

/// What a rename changed: rows per table (and column, for moves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    pub what: String,
    pub rows: u64,
}

/// `serve`'s marks of spooled batches are keyed by the batch, not the server.
fn server_owned_key(key: &str) -> bool {
    !key.starts_with("serve_spool:")
}

impl State {
    /// Rename server `old` to `new` (see the module's documentation); `me` must be the machine
    /// holding `old`'s name, when it was claimed.
    pub fn rename_server(&self, old: &str, new: &str, me: &Identity) -> Result<Vec<Renamed>> {
        if old.is_empty() || new.is_empty() || old == new {
            return Err(Error::Usage(format!(
                "state rename-server {old:?} {new:?}: give two different, non-empty server names"
            )));
        }
        let label = self.db.label().to_path_buf();
        self.db.transaction(|db| {
            let count = |name: &str| -> Result<Vec<String>> {
                let mut used = Vec::new();
                for (t, c) in SERVER_COLUMNS {
                    let n: u64 = db.value(
                        &format!("SELECT count(*) FROM {t} WHERE {c} = ?1"),
                        p![name],
                    )?;
                    if n > 0 {
                        used.push(format!("{n} {t}"));
                    }
                }
                Ok(used)
            };
            let mut in_use = count(new)?;
            if identity::claim_of(db, new)?.is_some() {
                in_use.push("its name claimed by a server".into());
            }
            if !in_use.is_empty() {
                return Err(Error::bad_input(
                    &label,
                    format!(
                        "server name {new:?} is in use in this state ({}): choose a name no server has used (nothing renamed)",
                        in_use.join(", ")
                    ),
                ));
            }
            let held = identity::claim_of(db, old)?;
            if held.is_none() && count(old)?.is_empty() {
                return Err(Error::bad_input(
                    &label,
                    format!("no server {old:?} in this state: nothing renamed"),
                ));
            }
            if let Some(h) = &held
                && h.who.machine_id != me.machine_id
            {
                return Err(Error::bad_input(
                    &label,
                    format!(
                        "server {old:?} is held by {} since {}, not this machine ({}): rename it there (nothing renamed)",
                        h.who.describe(),
                        h.since,
                        me.describe()
                    ),
                ));
            }
            let mut done = Vec::new();
            for (t, c) in SERVER_COLUMNS {
                let n = db.execute(
                    &format!("UPDATE {t} SET {c} = ?2 WHERE {c} = ?1"),
                    p![old, new],
                )?;
                let what = if *t == "moves" {
                    format!("{t}.{c}")
                } else {
                    t.to_string()
                };
                done.push(Renamed { what, rows: n });
            }
            // Its own meta keys (`KEY:OLD`); where NEW already has the key (a `serve` started
            // under the new name before the rename), NEW's is the newer and is kept.
            let keys: Vec<String> = db
                .query(
                    "SELECT key FROM meta WHERE length(key) > length(?1) + 1
                        AND substr(key, length(key) - length(?1)) = ':' || ?1",
                    p![old],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect::<Result<_>>()?;
            let mut n = 0;
            for k in keys.iter().filter(|k| server_owned_key(k)) {
                let base = &k[..k.len() - old.len() - 1];
                let to = format!("{base}:{new}");
                if db.query_opt("SELECT 1 FROM meta WHERE key = ?1", p![to])?.is_some() {
                    db.execute("DELETE FROM meta WHERE key = ?1", p![k])?;
                } else {
                    db.execute("UPDATE meta SET key = ?2 WHERE key = ?1", p![k, to])?;
                }
                n += 1;
            }
            done.push(Renamed {
                what: "meta".into(),
                rows: n,
            });
            Ok(done)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateAt;

    fn me(machine: &str) -> Identity {
        Identity {
            machine_id: machine.into(),
            host: "h".into(),
            config: "/etc/ba.toml".into(),
        }
    }

    fn rows(st: &State, sql: &str) -> Vec<String> {
        st.db
            .query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| r.get::<String>(0).unwrap())
            .collect()
    }

    #[test]
    fn a_rename_carries_every_row_and_key_and_refuses_a_used_name() {
        let d = tempfile::tempdir().unwrap();
        let mut at = StateAt::dir(d.path());
        at.server = "old".into();
        let st = State::open_at(&at).unwrap();
        st.db
            .batch(
                "INSERT INTO runs (server, started, finished, complete, accounts, at_risk, critical, high, medium, unknown, new_findings, held_addresses, not_audited, sources)
                   VALUES ('old', 's', 'f', 1, 0, 0, 0, 0, 0, 0, 0, 0, '[]', '[]'),
                          ('other', 's', 'f', 1, 0, 0, 0, 0, 0, 0, 0, 0, '[]', '[]');
                 INSERT INTO homes (address, server, kind, location, owner, seen_at)
                   VALUES ('a@x.example', 'old', 'passwd', 'f', NULL, 't');
                 INSERT INTO hash_marks (server, address, digest, since) VALUES ('old', 'a@x.example', 'd', '');
                 INSERT INTO moves (address, from_server, from_kind, from_location, to_server)
                   VALUES ('b@x.example', 'other', 'k', 'l', 'old');
                 INSERT INTO meta (key, value) VALUES ('hook_failures_read:old', '5'),
                   ('serve_last_write:old', 'x'), ('serve_last_write:new', 'y'),
                   ('serve_spool:old', 'batch'), ('hook_failures_read:bold', '7');",
            )
            .unwrap();
        // A name in use is refused, nothing changed.
        let e = st.rename_server("old", "other", &me("m1")).unwrap_err();
        assert!(e.to_string().contains("\"other\" is in use"), "{e}");
        assert_eq!(rows(&st, "SELECT server FROM homes"), ["old"]);
        // An unknown one too.
        let e = st.rename_server("nobody", "new2", &me("m1")).unwrap_err();
        assert!(e.to_string().contains("no server \"nobody\""), "{e}");

        let done = st.rename_server("old", "new", &me("m1")).unwrap();
        let n = |w: &str| done.iter().find(|r| r.what == w).unwrap().rows;
        assert_eq!((n("runs"), n("homes"), n("hash_marks")), (1, 1, 1));
        assert_eq!((n("moves.to_server"), n("moves.from_server")), (1, 0));
        assert_eq!(n("meta"), 2);
        assert_eq!(
            rows(&st, "SELECT server FROM runs ORDER BY server"),
            ["new", "other"]
        );
        assert_eq!(rows(&st, "SELECT to_server FROM moves"), ["new"]);
        assert_eq!(
            rows(&st, "SELECT key || '=' || value FROM meta ORDER BY key"),
            [
                "hook_failures_read:bold=7",
                "hook_failures_read:new=5",
                "serve_last_write:new=y",
                "serve_spool:old=batch"
            ]
        );
    }

    #[test]
    fn a_name_held_by_another_machine_is_renamed_there_only() {
        let d = tempfile::tempdir().unwrap();
        let mut at = StateAt::dir(d.path());
        at.server = "old".into();
        let st = State::open_at(&at).unwrap();
        st.db
            .transaction(|db| identity::record(db, "old", &me("m1"), "2026-12-07T00:00:00Z"))
            .unwrap();
        let e = st.rename_server("old", "new", &me("m2")).unwrap_err();
        assert!(e.to_string().contains("rename it there"), "{e}");
        let done = st.rename_server("old", "new", &me("m1")).unwrap();
        assert_eq!(done.iter().find(|r| r.what == "meta").unwrap().rows, 1);
        assert!(identity::claim_of(&st.db, "new").unwrap().is_some());
        assert!(identity::claim_of(&st.db, "old").unwrap().is_none());
    }
}
