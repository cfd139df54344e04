//! Telling customers, exactly once: `notify` delivers the open notices of the state database
//! ([`crate::state`]) through a transport and records what each transport accepted.
//!
//! A finding counts as told only when a notice naming it was accepted (`told_at`). A failed
//! delivery is recorded with its error and retried on a later run, after `retry_after` doubled
//! per attempt (capped at a day); after `max_attempts` the notice is `held` and reported to the
//! operator. Each notice is committed right after its send: a crash between the two re-sends at
//! most the message in flight. Findings without a contact, `unverifiable` accounts, held notices
//! and the last run's "not audited" list go to the operator in one message per run: customers
//! never get those.

pub mod message;
pub mod transport;

use crate::check::Severity;
use crate::config::ConfigPath;
use crate::error::{Error, Result};
use crate::messages::Warnings;
use crate::state::{self, DueNotice, NoticeRow, Refusal, State};
use message::{NoticeAddress, NoticeFinding, Templates};
use serde::Deserialize;
use transport::{SmtpSettings, SmtpTls, Transport, Via};

crate::options! {
    /// The `[notify]` section of the audit config; `via`, `sendmail` and `outbox` are flags too.
    #[derive(Clone, Debug, Default, Deserialize, serde::Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct NotifyConfig {
        /// The sender of notices, e.g. `Example Hosting Security <security@isp.example>`.
        #[arg(skip)]
        pub from: Option<String>,
        #[arg(skip)]
        pub reply_to: Option<String>,
        /// Who gets what customers must not (no contact, unverifiable, held, not audited).
        #[arg(skip)]
        pub operator: Option<String>,
        /// The transport (default sendmail; `via` in the config's [notify]).
        #[arg(long, value_enum)]
        pub via: Option<Via>,
        /// The outbox directory (one .eml per message, for another mailer).
        #[arg(long, value_name = "DIR")]
        pub outbox: Option<ConfigPath>,
        /// The sendmail program (default /usr/sbin/sendmail).
        #[arg(long, value_name = "PATH")]
        pub sendmail: Option<ConfigPath>,
        #[arg(skip)]
        pub smtp_host: Option<String>,
        #[arg(skip)]
        pub smtp_port: Option<u16>,
        #[arg(skip)]
        pub smtp_tls: Option<SmtpTls>,
        /// A 0600 file: the user name on the first line, the password on the second.
        #[arg(skip)]
        pub smtp_credentials: Option<ConfigPath>,
        /// Attempts before a notice is held (default 5).
        #[arg(skip)]
        pub max_attempts: Option<u32>,
        /// The first retry's delay, doubled per attempt (default "1h"; "0s" retries on every run).
        #[arg(skip)]
        pub retry_after: Option<String>,
        /// Overrides for `subject.txt`, `body.txt` and an optional `body.html`.
        #[arg(skip)]
        pub template_dir: Option<ConfigPath>,
    }
}

impl NotifyConfig {
    fn transport(&self) -> Result<Transport> {
        match self.via.unwrap_or(Via::Sendmail) {
            Via::Sendmail => Ok(Transport::sendmail(
                self.sendmail
                    .as_deref()
                    .unwrap_or(std::path::Path::new("/usr/sbin/sendmail")),
            )),
            Via::Outbox => Transport::outbox(self.outbox.as_deref().ok_or_else(|| {
                Error::Usage("notify via outbox needs `outbox = DIR` (or --outbox)".into())
            })?),
            Via::Smtp => Transport::smtp(&SmtpSettings {
                host: self.smtp_host.as_deref().ok_or_else(|| {
                    Error::Usage("notify via smtp needs `smtp_host` in [notify]".into())
                })?,
                port: self.smtp_port,
                tls: self.smtp_tls.unwrap_or_default(),
                credentials: self.smtp_credentials.as_deref(),
            }),
        }
    }

    fn retry_secs(&self) -> Result<u64> {
        match &self.retry_after {
            None => Ok(3600),
            Some(s) => humantime::parse_duration(s)
                .map(|d| d.as_secs())
                .map_err(|e| Error::Usage(format!("[notify] retry_after {s:?}: {e}"))),
        }
    }
}

/// How `notify` runs.
#[derive(Clone, Debug, Default)]
pub struct NotifyOptions {
    /// Render everything, send nothing, change nothing.
    pub dry_run: bool,
    /// Deliver at most this many customer notices.
    pub limit: Option<usize>,
    /// Try failed notices now, whatever their `next_attempt` (held ones stay held).
    pub retry_now: bool,
    /// `state_keep`: on a shared state the delivering runner (the `notify` command or the
    /// audit's `--notify`) prunes the fleet's sent notices and closed findings past it, once
    /// delivered, holding the delivery lease (a SQLite state's audit prunes them itself).
    /// None: nothing pruned.
    pub keep: Option<std::time::Duration>,
}

/// What `notify` did.
#[derive(Debug, Default)]
pub struct NotifyOutcome {
    pub sent: u64,
    pub failed: u64,
    pub held: u64,
    /// Open notices left (not due yet, or over the limit).
    pub left: u64,
    /// Items in the operator's message (0: none sent).
    pub operator_items: u64,
    /// The operator's message was the same as the last one sent, less than a day ago: not sent.
    pub operator_unchanged: bool,
    pub operator_failed: bool,
    /// With `dry_run`: (contact, addresses) of each notice that would go.
    pub would_send: Vec<(String, usize)>,
    /// Another server of the fleet is delivering (one runner at a time): nothing done here.
    pub busy: bool,
    /// With `busy`: who holds the delivery lease and until when (seconds since the epoch).
    pub busy_by: Option<(String, i64)>,
    /// What retention deleted of the fleet's rows after delivering (a shared state, with
    /// [`NotifyOptions::keep`]).
    pub pruned: Option<crate::state::PruneCounts>,
}

impl NotifyOutcome {
    /// Did any delivery fail (a run that should exit non-zero)?
    pub fn any_failed(&self) -> bool {
        self.failed > 0 || self.held > 0 || self.operator_failed
    }
}

impl std::fmt::Display for NotifyOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.busy {
            let Some((holder, until)) = &self.busy_by else {
                return write!(
                    f,
                    "another server of the fleet is delivering (one at a time); nothing sent here"
                );
            };
            let until = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(*until).unwrap_or(0));
            return write!(
                f,
                "another server of the fleet is delivering (one at a time: {holder} holds the delivery lease until {}); nothing sent here",
                humantime::format_rfc3339_seconds(until)
            );
        }
        write!(
            f,
            "{} sent, {} failed (retried later), {} held, {} still pending; operator message: {}",
            crate::check::plural(self.sent, "notice"),
            self.failed,
            self.held,
            self.left,
            match (self.operator_items, self.operator_failed) {
                (0, _) if self.operator_unchanged =>
                    "unchanged since the last one, not sent again".to_string(),
                (0, _) => "none".to_string(),
                (_, true) => "FAILED".to_string(),
                (n, false) => crate::check::plural(n, "item"),
            }
        )
    }
}

/// A run's settings, as `deliver` and `operator_message` share them.
struct Run<'a> {
    cfg: &'a NotifyConfig,
    opts: &'a NotifyOptions,
    warn: &'a Warnings,
    from: lettre::message::Mailbox,
    reply_to: Option<lettre::message::Mailbox>,
    templates: Templates,
    /// None with `dry_run`.
    transport: Option<Transport>,
    /// The sender's domain, for Message-IDs.
    domain: String,
    /// This run's delivery lease token (16 random bytes, hex).
    token: String,
    /// When the lease was last taken or renewed.
    renewed: std::cell::Cell<std::time::Instant>,
}

/// How long the delivery lease lasts past its last renewal: well over a send's worst case (the
/// SMTP transport's 30 s timeout, twice).
const LEASE_TTL: u64 = 300;

/// How often a delivering run renews its lease (before a send, once this much has passed).
const LEASE_RENEW: std::time::Duration = std::time::Duration::from_secs(30);

/// A fresh lease token: 16 random bytes, hex (the time and process id where the system has no
/// randomness to give: still unique to this run).
fn lease_token() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        b[..8].copy_from_slice(&t.to_le_bytes());
        b[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    hex::encode(b)
}

/// Renew the delivery lease before a send once [`LEASE_RENEW`] has passed: an error when another
/// server holds it now (this run stops before sending what that one may send too).
fn keep_lease(state: &State, run: &Run) -> Result<()> {
    if run.renewed.get().elapsed() < LEASE_RENEW {
        return Ok(());
    }
    if let Some(who) = state.renew_delivery_lease(&run.token, LEASE_TTL)? {
        return Err(Error::State {
            path: state.path().to_path_buf(),
            msg: format!("delivery lease lost to {who}"),
        });
    }
    run.renewed.set(std::time::Instant::now());
    Ok(())
}

/// Deliver the open notices that are due, then the operator's message.
pub fn notify(
    state: &mut State,
    cfg: &NotifyConfig,
    opts: &NotifyOptions,
    warn: &Warnings,
) -> Result<NotifyOutcome> {
    let from = message::mailbox(
        cfg.from
            .as_deref()
            .ok_or_else(|| Error::Usage("[notify] needs `from` (the sender of notices)".into()))?,
        "[notify] from",
    )?;
    let reply_to = cfg
        .reply_to
        .as_deref()
        .map(|r| message::mailbox(r, "[notify] reply_to"))
        .transpose()?;
    let templates = Templates::load(cfg.template_dir.as_deref())?;
    let transport = if opts.dry_run {
        None
    } else {
        Some(cfg.transport()?)
    };
    let domain = from.email.domain().to_string();
    let run = Run {
        cfg,
        opts,
        warn,
        from,
        reply_to,
        templates,
        transport,
        domain,
        token: lease_token(),
        renewed: std::cell::Cell::new(std::time::Instant::now()),
    };
    let mut out = NotifyOutcome::default();
    // One runner at a time across the fleet (the state directory's lock already makes it so
    // for one server): a lease row, renewed while delivering, released below (or expired).
    if let Some(by) = state.take_delivery_lease(&run.token, LEASE_TTL)? {
        out.busy = true;
        out.busy_by = Some(by);
        return Ok(out);
    }
    run.renewed.set(std::time::Instant::now());
    let r = deliver(state, &run, &mut out);
    if r.is_ok() {
        out.pruned = prune_fleet(state, opts, warn);
    }
    state.release_delivery_lease(&run.token)?;
    r.map(|()| out)
}

/// Retention of the fleet's rows on a shared state, by its delivering runner (holding the
/// lease): one place for the `notify` command and the audit's `--notify`. A failure is a
/// warning (the next run tries again).
fn prune_fleet(
    state: &State,
    opts: &NotifyOptions,
    warn: &Warnings,
) -> Option<crate::state::PruneCounts> {
    let keep = opts.keep.filter(|_| state.shared() && !opts.dry_run)?;
    let horizon = crate::state::earlier(keep.as_secs());
    match state.prune_fleet(&horizon, crate::state::PRUNE_BUDGET) {
        Ok(c) => Some(c),
        Err(e) => {
            warn.warn(format!(
                "retention (state_keep) stopped: {e}; the next notify tries again"
            ));
            None
        }
    }
}

/// Deliver, holding the fleet's delivery lease.
fn deliver(state: &mut State, run: &Run, out: &mut NotifyOutcome) -> Result<()> {
    let (cfg, opts) = (run.cfg, run.opts);
    let max_attempts = cfg.max_attempts.unwrap_or(5).max(1);
    let retry = cfg.retry_secs()?;
    if !opts.dry_run {
        // What is owed now (a suspension applied since the audit is owed to its customer).
        state.refresh_notices()?;
    }
    let due_all = state.pending_notices(opts.limit, opts.retry_now)?;
    let mut contents = std::collections::HashMap::new();
    for (i, due) in due_all.iter().enumerate() {
        crate::fsutil::check_interrupted()?;
        // What the notice names now, read a chunk of due notices at a time (ids within
        // CONTENTS_SPAN of the chunk's first): exactly this is recorded as told once it is
        // accepted (an audit on another server may add to the notice meanwhile: that is told
        // next).
        if !contents.contains_key(&due.id) {
            let chunk: Vec<i64> = due_all[i..]
                .iter()
                .map(|d| d.id)
                .take_while(|&id| id - due.id < state::CONTENTS_SPAN)
                .collect();
            contents = state.notices_contents(&chunk)?;
        }
        let (named, rows) = contents.remove(&due.id).unwrap_or_default();
        let addresses = notice_addresses(rows);
        if addresses.is_empty() {
            continue;
        }
        let to = match message::mailbox(&due.contact, "contact") {
            Ok(m) => m,
            Err(e) => {
                record_failure(state, due, &e.to_string(), max_attempts, retry, out)?;
                continue;
            }
        };
        let rendered = run
            .templates
            .notice(&due.contact, due.owner.as_deref(), &addresses)?;
        let id = message_id(due.id, &run.domain);
        let msg = message::build(&run.from, run.reply_to.as_ref(), &to, &id, &rendered)?;
        let Some(t) = &run.transport else {
            out.would_send.push((due.contact.clone(), addresses.len()));
            continue;
        };
        keep_lease(state, run)?;
        match t.send(&msg, &id) {
            Ok(()) => state
                .mark_sent(due.id, &named, &id, cfg.via.unwrap_or(Via::Sendmail).name())
                .map(|()| out.sent += 1)?,
            Err(why) => {
                run.warn
                    .warn(format!("notice to {} not delivered: {why}", due.contact));
                record_failure(state, due, &why, max_attempts, retry, out)?;
            }
        }
    }
    out.left = state.undelivered_notices()?;
    state.tally_fleet_notices()?;
    operator_message(state, run, out)
}

/// The addresses a notice names, each with its findings, sorted.
fn notice_addresses(rows: Vec<NoticeRow>) -> Vec<NoticeAddress> {
    let mut out: Vec<NoticeAddress> = Vec::new();
    for r in rows {
        let detail: serde_json::Value = serde_json::from_str(&r.finding).unwrap_or_default();
        let f = NoticeFinding {
            kind: r.kind,
            text: message::finding_text(&detail, r.suspended),
            detail,
        };
        match out.last_mut() {
            Some(a) if a.email == r.address => {
                a.findings.push(f);
                if severity(&r.severity) > severity(&a.severity) {
                    a.severity = r.severity;
                }
            }
            _ => out.push(NoticeAddress {
                email: r.address,
                domain: r.domain,
                severity: r.severity,
                suspended: r.suspended,
                outbound_suspended: r.outbound_suspended,
                findings: vec![f],
            }),
        }
    }
    out
}

/// A stored severity (anything else ranks as `unknown`).
fn severity(s: &str) -> Severity {
    s.parse().unwrap_or(Severity::Unknown)
}

/// `breach-audit.NOTICE.RANDOM@DOMAIN`: unique, and names the notice.
fn message_id(notice: i64, domain: &str) -> String {
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    format!("breach-audit.{notice}.{}@{domain}", hex::encode(r))
}

fn record_failure(
    state: &mut State,
    due: &DueNotice,
    why: &str,
    max_attempts: u32,
    retry: u64,
    out: &mut NotifyOutcome,
) -> Result<()> {
    let attempts = due.attempts + 1;
    let held = attempts >= max_attempts;
    let refusal = Refusal {
        attempts,
        error: why,
        delay: retry
            .saturating_mul(1 << (attempts - 1).min(16))
            .min(86_400),
    };
    if held {
        state.hold(due.id, &refusal)?;
        out.held += 1;
    } else {
        state.mark_failed(due.id, &refusal)?;
        out.failed += 1;
    }
    Ok(())
}

/// What customers must not get, for the operator: findings with no contact, unverifiable
/// accounts, held notices, the last run's not-audited list.
/// The items of the operator's message: events not reported yet (suspensions applied and
/// released) first, then the standing items; and how many are events.
fn operator_items(state: &State) -> Result<(Vec<String>, usize)> {
    let mut items = Vec::new();
    items.extend(state.unreported_suspensions()?);
    items.extend(state.unreported_releases()?);
    let events = items.len();
    items.extend(state.untold_without_contact()?);
    items.extend(state.unverifiable_accounts()?);
    items.extend(state.suspend_problem_lines()?);
    // Every server's held addresses and not-audited list: one message for the fleet.
    let servers: Vec<String> = state.fleet_runs()?.into_iter().map(|r| r.server).collect();
    let tag = |server: &str| {
        if server.is_empty() {
            String::new()
        } else {
            format!("[{server}] ")
        }
    };
    for server in &servers {
        let (held, total) = state.held_on(server, state::HELD_NAMED)?;
        let uncertain: Vec<&crate::state::Held> = held.iter().filter(|h| h.uncertain).collect();
        for h in &uncertain {
            // An address another server reads now is that server's: never the advice to
            // forget it (which would retire its findings there too).
            let there = state.servers_besides(&h.address, server)?;
            let advice = if there.is_empty() {
                "`breach-audit forget` retires it if it is gone".to_string()
            } else {
                format!(
                    "it lives on {} now, which keeps its findings",
                    there
                        .iter()
                        .map(|s| format!("server {s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            items.push(format!(
                "{}held (not audited, findings kept): {} - {} - for {}; {advice}",
                tag(server),
                h.address,
                h.reason,
                crate::check::plural(h.nights, "night")
            ));
        }
        if !uncertain.is_empty() && total > held.len() as u64 {
            items.push(format!(
                "{}held: {} more addresses (run.json, the page, the state's `held` table)",
                tag(server),
                total - held.len() as u64
            ));
        }
    }
    // A fetch that failed, or data older than `every` and a week: the operator must act.
    for (server, f) in crate::state::fetch_report::reports(state)? {
        if f.failed || f.stale {
            items.push(format!("{}{}", tag(&server), f.text()));
        }
    }
    items.extend(state.held_notices()?);
    for run in state.fleet_runs()? {
        if let Some(item) = run
            .logins()
            .and_then(|l| l.serve)
            .and_then(|r| message::serve_item(&run.server, &r))
        {
            items.push(item);
        }
        for d in run.not_audited() {
            items.push(format!(
                "{}not audited: {} ({}: {})",
                tag(&run.server),
                d.domain,
                d.path,
                d.reason
            ));
        }
    }
    Ok((items, events))
}

/// The `meta` key of the last operator message sent: its digest and time.
const OPERATOR_DIGEST: &str = "operator_message";

fn operator_message(state: &State, run: &Run, out: &mut NotifyOutcome) -> Result<()> {
    let (cfg, warn) = (run.cfg, run.warn);
    let (items, events) = operator_items(state)?;
    if items.is_empty() {
        return Ok(());
    }
    out.operator_items = items.len() as u64;
    let Some(op) = cfg.operator.as_deref() else {
        warn.warn(format!(
            "{} for the operator, but [notify] has no `operator` address",
            crate::check::plural(items.len() as u64, "item")
        ));
        out.operator_items = 0;
        return Ok(());
    };
    let to = message::mailbox(op, "[notify] operator")?;
    let page = crate::page::load(state, crate::page::NIGHTS, crate::page::Scope::Fleet)?;
    let mut summary = crate::page::summary_text(&page);
    // Where the HIBP data stands, whatever else the message says.
    for (server, f) in crate::state::fetch_report::reports(state)? {
        summary.push_str(&format!(
            "  {}{}\n",
            if server.is_empty() {
                String::new()
            } else {
                format!("[{server}] ")
            },
            f.text()
        ));
    }
    // The same message again (no suspension applied or released since the last one, the same
    // standing items) is not sent again within a day, however the run's numbers moved.
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(format!(
            "{op}\n{}",
            items[events..].join("\n")
        )))
    };
    let last = state.meta(OPERATOR_DIGEST)?;
    let fresh = events == 0
        && last
            .as_deref()
            .and_then(|v| v.split_once(' '))
            .is_some_and(|(d, at)| d == digest && at > state::earlier(86_400).as_str());
    if fresh {
        out.operator_items = 0;
        out.operator_unchanged = true;
        return Ok(());
    }
    let mut rendered = run.templates.operator(&items, &summary)?;
    rendered.attachment = Some((crate::page::FILE.to_string(), crate::page::render(&page)?));
    let id = message_id(0, &run.domain).replacen("breach-audit.0.", "breach-audit.operator.", 1);
    let msg = message::build(&run.from, run.reply_to.as_ref(), &to, &id, &rendered)?;
    let Some(t) = &run.transport else {
        return Ok(());
    };
    keep_lease(state, run)?;
    if let Err(why) = t.send(&msg, &id) {
        warn.warn(format!("operator message not delivered: {why}"));
        out.operator_failed = true;
        return Ok(());
    }
    // What the message reported is not reported again.
    let now = state::now();
    state.mark_suspensions_reported(&now)?;
    state.set_meta(OPERATOR_DIGEST, &format!("{digest} {now}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Severity, severity};

    #[test]
    fn stored_severities_rank_as_the_checks_and_others_as_unknown() {
        for s in [
            Severity::Unknown,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(severity(s.name()), s);
        }
        assert_eq!(severity("bogus"), Severity::Unknown);
        assert_eq!(severity("Critical"), Severity::Unknown);
        assert!(severity("critical") > severity("high"));
        assert!(severity("medium") > severity("bogus"));
    }
}
