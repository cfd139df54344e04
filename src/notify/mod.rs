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

use crate::config::ConfigPath;
use crate::error::{Error, Result};
use crate::messages::Warnings;
use crate::state::{self, State, V, p};
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
            return write!(
                f,
                "another server of the fleet is delivering (one at a time); nothing sent here"
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

/// A notice due for delivery.
struct Due {
    id: i64,
    contact: String,
    owner: Option<String>,
    attempts: u32,
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
    let mut out = NotifyOutcome::default();
    // One runner at a time across the fleet (the state directory's lock already makes it so
    // for one server): the lock is the connection's, released when it ends or below.
    if !state.db.try_lock(state::NOTIFY_LOCK)? {
        out.busy = true;
        return Ok(out);
    }
    let r = deliver(
        state,
        cfg,
        opts,
        warn,
        &from,
        reply_to.as_ref(),
        &templates,
        transport.as_ref(),
        &domain,
        &mut out,
    );
    state.db.unlock(state::NOTIFY_LOCK)?;
    r.map(|()| out)
}

/// Deliver, holding the fleet's delivery lock.
#[allow(clippy::too_many_arguments)]
fn deliver(
    state: &mut State,
    cfg: &NotifyConfig,
    opts: &NotifyOptions,
    warn: &Warnings,
    from: &lettre::message::Mailbox,
    reply_to: Option<&lettre::message::Mailbox>,
    templates: &Templates,
    transport: Option<&Transport>,
    domain: &str,
    out: &mut NotifyOutcome,
) -> Result<()> {
    let max_attempts = cfg.max_attempts.unwrap_or(5).max(1);
    let retry = cfg.retry_secs()?;
    if !opts.dry_run {
        // What is owed now (a suspension applied since the audit is owed to its customer).
        state.refresh_notices()?;
    }
    for due in due_notices(state, opts.limit, opts.retry_now)? {
        crate::fsutil::check_interrupted()?;
        // What the notice names now: exactly this is recorded as told once it is accepted
        // (an audit on another server may add to the notice meanwhile: that is told next).
        let named = notice_pairs(state, due.id)?;
        let addresses = notice_addresses(state, due.id)?;
        if addresses.is_empty() {
            continue;
        }
        let to = match message::mailbox(&due.contact, "contact") {
            Ok(m) => m,
            Err(e) => {
                record_failure(state, &due, &e.to_string(), max_attempts, retry, out)?;
                continue;
            }
        };
        let rendered = templates.notice(&due.contact, due.owner.as_deref(), &addresses)?;
        let id = message_id(due.id, domain);
        let msg = message::build(from, reply_to, &to, &id, &rendered)?;
        let Some(t) = transport else {
            out.would_send.push((due.contact.clone(), addresses.len()));
            continue;
        };
        match t.send(&msg, &id) {
            Ok(()) => record_sent(state, &due, &named, &id, cfg.via.unwrap_or(Via::Sendmail))
                .map(|()| out.sent += 1)?,
            Err(why) => {
                warn.warn(format!("notice to {} not delivered: {why}", due.contact));
                record_failure(state, &due, &why, max_attempts, retry, out)?;
            }
        }
    }
    out.left = state.count("notices", "status IN ('pending', 'failed')")?;
    state.tally_last_run()?;
    operator_message(
        state, cfg, templates, from, reply_to, transport, domain, out, warn,
    )
}

/// The (address, kind) pairs a notice names.
fn notice_pairs(state: &State, id: i64) -> Result<Vec<(String, String)>> {
    state
        .db
        .query(
            "SELECT address, kind FROM notice_findings WHERE notice_id = ?1 ORDER BY address, kind",
            p![id],
        )?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect()
}

/// Open notices whose `next_attempt` has come (with `retry_now`, every open notice).
fn due_notices(state: &State, limit: Option<usize>, retry_now: bool) -> Result<Vec<Due>> {
    let limit = limit.map(|l| l as i64).unwrap_or(i64::MAX);
    state
        .db
        .query(
            "SELECT id, contact, owner, attempts FROM notices
             WHERE status IN ('pending', 'failed')
               AND (?3 OR next_attempt IS NULL OR next_attempt <= ?1)
             ORDER BY id LIMIT ?2",
            p![state::now(), limit, retry_now],
        )?
        .iter()
        .map(|r| {
            Ok(Due {
                id: r.get(0)?,
                contact: r.get(1)?,
                owner: r.get(2)?,
                attempts: r.get::<u64>(3)? as u32,
            })
        })
        .collect()
}

/// The addresses a notice names, each with its findings, sorted.
fn notice_addresses(state: &State, id: i64) -> Result<Vec<NoticeAddress>> {
    let rows = state.db.query(
        // Two indexed lookups (an OR of the two made PostgreSQL scan every finding per notice).
        "SELECT * FROM (
            SELECT f.address, f.domain, f.severity, f.suspended, f.kind, f.finding,
                EXISTS (SELECT 1 FROM suspensions s WHERE s.address = f.address AND s.released_at IS NULL) AS outbound
            FROM findings f JOIN notice_findings nf ON nf.address = f.address AND nf.kind = f.kind
            WHERE nf.notice_id = ?1
            UNION
            SELECT f.address, f.domain, f.severity, f.suspended, f.kind, f.finding,
                EXISTS (SELECT 1 FROM suspensions s WHERE s.address = f.address AND s.released_at IS NULL) AS outbound
            FROM findings f JOIN notice_findings nf ON nf.address = f.address
            WHERE nf.notice_id = ?1 AND nf.kind = 'outbound_suspended'
              AND f.resolved_at IS NULL AND f.kind NOT LIKE 'unverifiable%'
         ) u
         ORDER BY address, CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, kind",
        p![id],
    )?;
    let mut out: Vec<NoticeAddress> = Vec::new();
    for r in rows {
        let (email, domain, severity, suspended, kind, finding, outbound_suspended): (
            String,
            String,
            String,
            bool,
            String,
            String,
            bool,
        ) = (
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        );
        let detail: serde_json::Value = serde_json::from_str(&finding).unwrap_or_default();
        let f = NoticeFinding {
            kind,
            text: message::finding_text(&detail, suspended),
            detail,
        };
        match out.last_mut() {
            Some(a) if a.email == email => {
                a.findings.push(f);
                if severity_rank(&severity) > severity_rank(&a.severity) {
                    a.severity = severity;
                }
            }
            _ => out.push(NoticeAddress {
                email,
                domain,
                severity,
                suspended,
                outbound_suspended,
                findings: vec![f],
            }),
        }
    }
    Ok(out)
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 3,
        "high" => 2,
        "medium" => 1,
        _ => 0,
    }
}

/// `breach-audit.NOTICE.RANDOM@DOMAIN`: unique, and names the notice.
fn message_id(notice: i64, domain: &str) -> String {
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    format!("breach-audit.{notice}.{}@{domain}", hex::encode(r))
}

fn record_sent(
    state: &mut State,
    due: &Due,
    named: &[(String, String)],
    id: &str,
    via: Via,
) -> Result<()> {
    let now = state::now();
    let pairs: Vec<Vec<V>> = named
        .iter()
        .map(|(a, k)| vec![V::I(due.id), V::T(a), V::T(k)])
        .collect();
    let mut addresses: Vec<&str> = named.iter().map(|(a, _)| a.as_str()).collect();
    addresses.dedup();
    state.db.transaction(|db| {
        // Not while an audit rewrites what the notices name.
        db.lock_xact(state::NOTICES_LOCK)?;
        db.execute(
            "UPDATE notices SET status = 'sent', sent_at = ?2, message_id = ?3, transport = ?4,
                attempts = attempts + 1, last_error = NULL, next_attempt = NULL WHERE id = ?1",
            p![due.id, now, format!("<{id}>"), via.name()],
        )?;
        // The sent notice names what the message said; anything added meanwhile is owed anew.
        db.execute(
            "DELETE FROM notice_findings WHERE notice_id = ?1",
            p![due.id],
        )?;
        db.insert_many(
            "INSERT INTO notice_findings (notice_id, address, kind)",
            3,
            "ON CONFLICT DO NOTHING",
            &pairs,
        )?;
        for (a, k) in named {
            db.execute(
                "UPDATE findings SET told_at = ?1 WHERE address = ?2 AND kind = ?3",
                p![now, a, k],
            )?;
        }
        // The notice said so of every suspended address it named.
        for a in &addresses {
            db.execute(
                "UPDATE suspensions SET told_at = ?1 WHERE address = ?2
                    AND released_at IS NULL AND told_at IS NULL",
                p![now, a],
            )?;
        }
        Ok(())
    })
}

fn record_failure(
    state: &mut State,
    due: &Due,
    why: &str,
    max_attempts: u32,
    retry: u64,
    out: &mut NotifyOutcome,
) -> Result<()> {
    let attempts = due.attempts + 1;
    let held = attempts >= max_attempts;
    let delay = retry
        .saturating_mul(1 << (attempts - 1).min(16))
        .min(86_400);
    state.db.execute(
        "UPDATE notices SET status = ?2, attempts = ?3, last_error = ?4, next_attempt = ?5
         WHERE id = ?1",
        p![
            due.id,
            if held { "held" } else { "failed" },
            u64::from(attempts),
            why.trim(),
            state::later(delay)
        ],
    )?;
    if held {
        out.held += 1;
    } else {
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
    let query = |sql: &str| -> Result<Vec<String>> {
        state.db.query(sql, &[])?.iter().map(|r| r.get(0)).collect()
    };
    items.extend(query(
        "SELECT 'outbound mail suspended: ' || address || ' (' || CASE WHEN server = '' THEN '' ELSE server || ': ' END || platform || ' ' || target || ', since ' || applied_at || ')'
         FROM suspensions WHERE released_at IS NULL AND reported_at IS NULL ORDER BY address, id",
    )?);
    items.extend(query(
        "SELECT 'outbound mail released: ' || address || ' (' || CASE WHEN server = '' THEN '' ELSE server || ': ' END || platform || ' ' || target || ': ' || coalesce(released_reason, 'the password was changed') || ')'
         FROM suspensions WHERE released_at IS NOT NULL AND release_reported_at IS NULL ORDER BY address, id",
    )?);
    let events = items.len();
    items.extend(query(
        "SELECT address || ' (owner ' || coalesce(owner, 'unknown') || '): ' || group_concat(kind, ', ' ORDER BY kind)
           || ' - no contact address is known; the customer is told once one is'
         FROM findings WHERE resolved_at IS NULL AND told_at IS NULL AND contact IS NULL
           AND kind NOT LIKE 'unverifiable%' GROUP BY address, owner ORDER BY address",
    )?);
    items.extend(query(
        "SELECT address || ': its stored hash (' || substr(kind, 14) || ')' || ' cannot be checked - convert the account to a scheme breach-audit verifies'
         FROM findings WHERE resolved_at IS NULL AND kind LIKE 'unverifiable%' ORDER BY address",
    )?);
    items.extend(query(
        "SELECT CASE WHEN server = '' THEN '' ELSE '[' || server || '] ' END || address || ': ' || problem
         FROM suspend_problems ORDER BY server, platform = '', address",
    )?);
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
            let there: Vec<String> = state
                .db
                .query(
                    "SELECT DISTINCT server FROM homes WHERE address = ?1 AND server <> ?2 ORDER BY server",
                    crate::state::p![h.address, server],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect::<Result<_>>()?;
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
    items.extend(query(
        "SELECT 'notice to ' || contact || ' held after ' || attempts || ' attempts: ' || coalesce(last_error, '?')
         FROM notices WHERE status = 'held' ORDER BY id",
    )?);
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

#[allow(clippy::too_many_arguments)]
fn operator_message(
    state: &State,
    cfg: &NotifyConfig,
    templates: &Templates,
    from: &lettre::message::Mailbox,
    reply_to: Option<&lettre::message::Mailbox>,
    transport: Option<&Transport>,
    domain: &str,
    out: &mut NotifyOutcome,
    warn: &Warnings,
) -> Result<()> {
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
    let page = crate::page::load(state, crate::page::NIGHTS)?;
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
    let mut rendered = templates.operator(&items, &summary)?;
    rendered.attachment = Some((crate::page::FILE.to_string(), crate::page::render(&page)?));
    let id = message_id(0, domain).replacen("breach-audit.0.", "breach-audit.operator.", 1);
    let msg = message::build(from, reply_to, &to, &id, &rendered)?;
    let Some(t) = transport else {
        return Ok(());
    };
    if let Err(why) = t.send(&msg, &id) {
        warn.warn(format!("operator message not delivered: {why}"));
        out.operator_failed = true;
        return Ok(());
    }
    // What the message reported is not reported again.
    let now = state::now();
    state.db.execute(
        "UPDATE suspensions SET reported_at = ?1 WHERE reported_at IS NULL",
        p![now],
    )?;
    state.db.execute(
        "UPDATE suspensions SET release_reported_at = ?1
         WHERE released_at IS NOT NULL AND release_reported_at IS NULL",
        p![now],
    )?;
    state.set_meta(OPERATOR_DIGEST, &format!("{digest} {now}"))?;
    Ok(())
}
