//! Postfix: a `check_sasl_access` map, lines `address REJECT reason`, compiled by `postmap`
//! after every write (and on the next run, while its `.db` is missing or older than the map).

use super::files::{Compiler, MapFile, find_program};
use super::{Cx, Platform};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub(super) struct Postfix;

impl MapFile for Postfix {
    fn platform(&self) -> Platform {
        Platform::Postfix
    }

    fn line(&self, address: &str, _since: u64) -> String {
        format!(
            "{address} REJECT breach-audit: this account's password is public; change it to send mail again"
        )
    }

    fn address_in<'a>(&self, line: &'a str) -> Option<&'a str> {
        line.split_whitespace().next()
    }

    fn compiler(&self, cx: &Cx<'_>) -> Result<Option<Compiler>> {
        let pm = find_program(cx.cfg.postmap.as_deref(), "postmap")?;
        Ok(Some(Box::new(move |path: &Path| {
            if path.exists() && needs_postmap(path) {
                postmap(&pm, path)?;
            }
            Ok(())
        })))
    }
}

/// Run `postmap hash:PATH`.
fn postmap(pm: &Path, path: &Path) -> Result<()> {
    let failed = |msg: String| Error::Program {
        program: pm.to_path_buf(),
        msg,
    };
    let o = std::process::Command::new(pm)
        .arg(format!("hash:{}", path.display()))
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !o.status.success() {
        let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
        return Err(failed(format!(
            "postmap failed on hash:{} ({}{}); the map file is written and recorded, its .db is not: the next run runs postmap again",
            path.display(),
            o.status,
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            }
        )));
    }
    Ok(())
}

/// Is the map's `.db` missing or older than the map (a changed map, or a postmap that failed)?
fn needs_postmap(map: &Path) -> bool {
    let db = PathBuf::from(format!("{}.db", map.display()));
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(map), mtime(&db)) {
        (Some(m), Some(d)) => d < m,
        _ => true,
    }
}
