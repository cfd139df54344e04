//! The `meta` table: keys and values, and the rule for a server's own keys.

use super::{State, p};
use crate::error::Result;

impl State {
    /// A value of the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        match self
            .db
            .query_opt("SELECT value FROM meta WHERE key = ?1", p![key])?
        {
            Some(r) => r.get(0),
            None => Ok(None),
        }
    }

    /// Set a key of the `meta` table (replacing its value).
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.db.set_meta(key, value)
    }

    /// Set a key of the `meta` table unless it is set: another server may set it at the same
    /// time, and the first value kept wins (read it back with [`State::meta`]).
    pub(crate) fn set_meta_once(&self, key: &str, value: &str) -> Result<()> {
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            p![key, value],
        )?;
        Ok(())
    }

    /// Remove a key of the `meta` table (none: nothing to do).
    pub fn delete_meta(&self, key: &str) -> Result<()> {
        self.db
            .execute("DELETE FROM meta WHERE key = ?1", p![key])?;
        Ok(())
    }

    /// This server's own `meta` key for `key` (`key:SERVER` in a fleet, `key` alone for one
    /// server): serve's counters and marks are per server.
    pub(crate) fn server_key(&self, key: &str) -> String {
        if self.server.is_empty() {
            key.to_string()
        } else {
            format!("{key}:{}", self.server)
        }
    }
}
