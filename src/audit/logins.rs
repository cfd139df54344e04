//! Tonight's logins: each source's coverage by `serve`'s verdicts, what the login hook refused
//! and failed since the last run, and the warning when the hook cannot record its failures.

use super::AuditOptions;
use crate::check;
use crate::error::Result;
use crate::messages::Warnings;
use crate::sources::accounts::AccountSource;
use crate::state::State;
use std::path::Path;

/// Tonight's login coverage per source, and what `serve` and the hook did since the last run.
pub(super) fn login_summary(
    state: &mut State,
    file: &Path,
    accounts: &[AccountSource],
    outcome: &check::CheckOutcome,
) -> Result<crate::state::LoginSummary> {
    let last = state.last_run_started()?.unwrap_or_default();
    let (refused_accounts, refused_logins, hook_failures) = state.login_events(&last, file)?;
    let by_source: Vec<crate::state::LoginSource> = accounts
        .iter()
        .zip(&outcome.sources)
        .map(|(src, n)| crate::state::LoginSource {
            kind: src.flag().to_string(),
            path: src.location(),
            accounts: n.accounts,
            judged_30d: n.login_judged,
        })
        .collect();
    let judged_30d = by_source.iter().map(|s| s.judged_30d).sum::<u64>();
    Ok(crate::state::LoginSummary {
        judged_30d,
        not_judged: outcome.summary.accounts.saturating_sub(judged_30d),
        by_source,
        refused_accounts,
        refused_logins,
        hook_failures,
        failures_file: file.display().to_string(),
        serve: None,
    })
}

/// Warn when accounts are judged at logins but the hook has nowhere to record its failures.
pub(super) fn warn_without_failures_dir(
    opts: &AuditOptions,
    logins: &crate::state::LoginSummary,
    warn: &Warnings,
) {
    if logins.judged_30d > 0
        && !opts
            .login_failures
            .parent()
            .is_some_and(|d| d.as_os_str().is_empty() || d.is_dir())
    {
        warn.warn(format!(
            "the login hook cannot record its failures: {} does not exist (create it writable by Dovecot's auth workers, or set [serve] failures_file to where BREACH_AUDIT_FAILURES points)",
            opts.login_failures.parent().unwrap_or(Path::new("")).display()
        ));
    }
}
