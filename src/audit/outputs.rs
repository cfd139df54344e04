//! What an audit writes to `--out` (each file to a temporary name, fsynced, renamed, mode 0600):
//! `notices.csv` and `notices.jsonl` (tonight's new findings by contact), `run.json` (the run's
//! record), and the state's row of the run.

use super::AuditOutcome;
use crate::check::{Record, Severity};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::AtomicFile;
use crate::index::Index;
use crate::sources::accounts::{AccountSource, DomainIssue, Problem};
use crate::state::{NotAudited, RunRow};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// The domains not audited (or without an owner), as recorded in run.json and the state.
pub(super) fn not_audited(issues: &[DomainIssue]) -> Vec<NotAudited> {
    issues
        .iter()
        .map(|i| NotAudited {
            domain: i.domain.clone(),
            path: i.path.display().to_string(),
            reason: match &i.problem {
                Problem::Unreadable(why) => why.clone(),
                Problem::NoOwner => "no owner".to_string(),
            },
        })
        .collect()
}

/// `run.json`: what tonight's run did and what it could not do, for scripts and the operator.
pub(super) fn write_run(
    path: &Path,
    o: &AuditOutcome,
    not_audited: &[NotAudited],
    started: std::time::SystemTime,
) -> Result<()> {
    let secs = |t: std::time::SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    let s = &o.summary;
    let run = serde_json::json!({
        "started": secs(started),
        "finished": secs(std::time::SystemTime::now()),
        "complete": o.complete(),
        "index_rebuilt": o.rebuilt,
        "index_stale": o.index_stale.is_some(),
        "index_stale_reason": o.index_stale,
        "accounts": s.accounts,
        "compared": s.compared,
        "salted": s.salted,
        "unverifiable": s.unverifiable,
        "rejected_rows": s.rejected_rows,
        "slow_verifications": {"run": s.verified, "from_cache": s.cached, "deferred_accounts": s.deferred},
        "at_risk": {"total": s.at_risk, "critical": s.critical, "high": s.high, "medium": s.medium, "unknown": s.unknown},
        "new_findings": o.new_findings,
        "new_accounts": o.new_accounts,
        "notices": o.notices,
        "held_addresses": o.held_addresses,
        "held_uncertain": o.uncertain,
        "held": o.held,
        "retired": o.retired,
        "moved": o.moved,
        "not_audited": not_audited,
        "alerts": o.alerts.iter().cloned().chain(o.fetch_alert()).collect::<Vec<_>>(),
        "logins": o.logins,
        "fetch": o.fetch,
        "state_retries": crate::state::conflict_retries(),
        "pruned": o.pruned,
    });
    let mut f = AtomicFile::create(path)?;
    writeln!(f, "{run}").at(path)?;
    f.commit()
}

/// The state's row of this run; its sources are the account sources and the index's breach
/// sources with their size, mtime and content fingerprint.
pub(super) fn run_row(
    o: &AuditOutcome,
    not_audited: &[NotAudited],
    accounts: &[AccountSource],
    index: &Index,
    started: std::time::SystemTime,
) -> RunRow {
    let s = &o.summary;
    let mut sources: Vec<serde_json::Value> = accounts
        .iter()
        .zip(o.sources.iter().cloned().chain(std::iter::repeat(Default::default())))
        .map(|(src, n)| {
            let mtime = match src {
                AccountSource::Sql(_) | AccountSource::Ldap(_) => None,
                _ => std::fs::metadata(src.location())
                    .ok()
                    .map(|m| std::os::unix::fs::MetadataExt::mtime(&m)),
            };
            serde_json::json!({"kind": src.flag(), "path": src.location(), "rows": n.accounts + n.rejected, "accounts": n.accounts, "rejected": n.rejected, "mtime": mtime})
        })
        .collect();
    sources.extend(index.manifest.sources.iter().map(|b| {
        serde_json::json!({"kind": b.kind, "path": b.path, "size": b.size, "mtime": b.mtime, "fingerprint": b.fingerprint, "rows": b.lines - b.blank, "rejected": b.rejected})
    }));
    RunRow {
        started: humantime::format_rfc3339_seconds(started).to_string(),
        complete: o.complete(),
        accounts: s.accounts,
        at_risk: s.at_risk,
        critical: s.critical,
        high: s.high,
        medium: s.medium,
        unknown: s.unknown,
        new_findings: o.new_findings,
        held_addresses: o.held_addresses,
        not_audited: serde_json::to_string(not_audited).unwrap_or_default(),
        sources: serde_json::to_string(&sources).unwrap_or_default(),
        index_rebuilt: o.rebuilt,
        retired: o.retired,
        held: serde_json::to_string(&o.held).unwrap_or_default(),
        logins: serde_json::to_string(&o.logins).unwrap_or_default(),
    }
}

/// `notices.jsonl`: one record per contact (and owner) with tonight's new findings, with the
/// addresses' full records (notices.csv's rows, for a mail merge that needs no join).
pub(super) fn write_notices_jsonl(path: &Path, new_records: &[Record]) -> Result<()> {
    let mut by: BTreeMap<(Option<&str>, Option<&str>), Vec<&Record>> = BTreeMap::new();
    for r in new_records {
        by.entry((r.contact.as_deref(), r.owner.as_deref()))
            .or_default()
            .push(r);
    }
    let mut f = AtomicFile::create(path)?;
    for ((contact, owner), records) in by {
        let worst = records
            .iter()
            .map(|r| r.severity)
            .max()
            .unwrap_or(Severity::Unknown);
        let line = serde_json::json!({
            "contact": contact,
            "owner": owner,
            "worst_severity": worst,
            "records": records,
        });
        writeln!(f, "{line}").at(path)?;
    }
    f.commit()
}

/// A row of notices.csv.
#[derive(Debug, PartialEq, Eq)]
pub struct Notice {
    pub contact: String,
    pub owner: String,
    pub addresses: Vec<String>,
    pub worst: Severity,
}

pub(super) fn notices(new_records: &[Record]) -> Vec<Notice> {
    let mut by: BTreeMap<(String, String), (Vec<String>, Severity)> = BTreeMap::new();
    for r in new_records {
        let key = (
            r.contact.clone().unwrap_or_default(),
            r.owner.clone().unwrap_or_default(),
        );
        let e = by.entry(key).or_insert((Vec::new(), Severity::Unknown));
        e.0.push(r.email.clone());
        e.1 = e.1.max(r.severity);
    }
    by.into_iter()
        .map(|((contact, owner), (addresses, worst))| Notice {
            contact,
            owner,
            addresses,
            worst,
        })
        .collect()
}

pub(super) fn write_notices(path: &Path, notices: &[Notice]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    {
        let mut w = csv::Writer::from_writer(&mut f);
        let io = |e: csv::Error| Error::io(path, e.into());
        w.write_record(["contact", "owner", "addresses", "worst_severity"])
            .map_err(io)?;
        for n in notices {
            w.write_record([
                n.contact.as_str(),
                n.owner.as_str(),
                &n.addresses.join(" "),
                n.worst.name(),
            ])
            .map_err(io)?;
        }
        w.flush().at(path)?;
    }
    f.commit()
}
