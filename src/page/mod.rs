//! The operator's morning page: `breach-audit report`, and `audit`'s `--out/report.html` every
//! run. One self-contained HTML file (inline CSS and SVG; no script, font or image from anywhere)
//! made from the state database: tonight's numbers with their change since the previous run, a
//! chart of at-risk accounts by severity over the last runs (`chart.rs`), the owners and domains
//! carrying most of it, the sources and their health, the open notices, what was not audited
//! and the addresses held for it, the accounts suspended now, and (with `[fetch]`) where the
//! HIBP data stands: when it was last fetched, what changed, how old the index's data is. It names addresses only where
//! the operator must act on them (open notices, held addresses, suspensions) and never holds a
//! password or a hash: it reads counts, addresses, domains,
//! owners and reasons, nothing else.
//!
//! The HTML is a minijinja template (`page.html`, auto-escaped) filled from plain structs.

mod chart;
mod sample;

pub use sample::sample_history;

use crate::error::{Error, IoContext, Result};
use crate::state::State;
use serde::Serialize;
use std::path::Path;

/// The page's name in an audit's `--out`.
pub const FILE: &str = "report.html";
/// Runs the chart shows by default.
pub const NIGHTS: usize = 90;
/// Rows in the owner and domain tables.
const TOP: usize = 10;
/// Open notices and not-audited domains listed at most.
const LISTED: usize = 500;

/// Whose page: one server's (an audit's `--out/report.html`) or the fleet's (`report`, and the
/// operator's message). On a server alone the two show the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// This server's owners, domains, notices, suspensions and HIBP data; no fleet table. Read
    /// through this server's homes and rows by index, so an audit's page costs the same however
    /// large the fleet.
    Server,
    /// The whole ledger: every server's last run in the fleet table, the fleet's owners, domains,
    /// notices and suspensions.
    Fleet,
}

/// A run as the page reads it.
pub type Run = crate::state::RecordedRun;

pub use crate::state::views::{OpenNotice, SuspendedRow, Top};

#[cfg(test)]
fn example(started: &str, [critical, high, medium, unknown]: [u64; 4]) -> Run {
    Run {
        row: crate::state::RunRow {
            started: started.into(),
            complete: true,
            critical,
            high,
            medium,
            unknown,
            at_risk: critical + high + medium + unknown,
            ..Default::default()
        },
        after: None,
        server: String::new(),
    }
}

/// An account or breach source as tonight's run read it.
#[derive(Debug, Serialize)]
pub struct SourceRow {
    pub kind: String,
    pub path: String,
    pub rows: String,
    pub rejected: String,
    pub last_changed: String,
    pub changed_tonight: bool,
}

/// One number of tonight's summary and its change since the previous run.
#[derive(Debug, Serialize)]
pub struct Tile {
    pub label: &'static str,
    pub value: String,
    pub change: String,
    /// `worse`, `better` or `same` (for the colour of the change).
    pub tone: &'static str,
    /// CSS class of the tile (severity tiles are coloured).
    pub class: &'static str,
}

/// A server's HIBP data as its last run's `[fetch]` report left it (`crate::audit::fetch`).
#[derive(Debug, Serialize)]
pub struct FetchRow {
    /// The server (empty: one server alone).
    pub server: String,
    pub hibp: String,
    pub mode: String,
    pub every: String,
    pub last_fetched: String,
    pub last_attempt: String,
    /// Ranges changed by the last fetch (`–`: never fetched).
    pub ranges_changed: String,
    /// The age of the data the index answers from, in days (`–`: not built from the store).
    pub data_age_days: String,
    pub data_at: String,
    pub built_from_run: String,
    /// Older than `every` plus a margin, or the index not built from the store.
    pub stale: bool,
    /// The last fetch failed (its cause), retried next night.
    pub failed: bool,
    pub error: String,
    pub failed_ranges: u64,
}

impl From<(String, crate::state::fetch_report::FetchReport)> for FetchRow {
    fn from((server, f): (String, crate::state::fetch_report::FetchReport)) -> FetchRow {
        let dash = || "\u{2013}".to_string();
        let fetched = f.last_fetched_at.is_some();
        FetchRow {
            server,
            last_fetched: f.last_fetched_at.unwrap_or_else(|| "never".into()),
            last_attempt: f.last_attempt_at.unwrap_or_else(dash),
            ranges_changed: if fetched || f.ran {
                f.ranges_changed.to_string()
            } else {
                dash()
            },
            data_age_days: f
                .index_data_age_days
                .map_or_else(dash, |d| format!("{d:.1}")),
            data_at: f.index_data_at.unwrap_or_default(),
            built_from_run: f
                .index_built_from_run
                .map_or_else(String::new, |r| r.to_string()),
            stale: f.stale,
            failed: f.failed,
            error: f.error.unwrap_or_default(),
            failed_ranges: f.failed_ranges,
            hibp: f.hibp,
            mode: f.mode,
            every: f.every,
        }
    }
}

/// Everything on the page.
pub struct Page {
    /// The last runs, oldest first.
    pub runs: Vec<Run>,
    pub owners: Vec<Top>,
    pub domains: Vec<Top>,
    pub notices: Vec<OpenNotice>,
    /// Suspended now.
    pub suspended: Vec<SuspendedRow>,
    /// What could not be suspended, or failed (address, problem).
    pub suspend_problems: Vec<(String, String)>,
    /// Held now (the first [`LISTED`]), and how many in all.
    pub held: Vec<crate::state::Held>,
    pub held_total: u64,
    /// Every server's last run (one row for a server alone).
    pub fleet: Vec<FleetRow>,
    /// This server's name (empty: one server alone).
    pub server: String,
    /// Whose page it is.
    pub scope: Scope,
    /// Each server's HIBP data (`[fetch]`; empty without it).
    pub fetch: Vec<FetchRow>,
    pub generated: String,
}

/// A server of the ledger, as its last run left it.
#[derive(Debug, Serialize)]
pub struct FleetRow {
    pub server: String,
    pub last_run: String,
    pub complete: bool,
    pub accounts: u64,
    pub at_risk: u64,
    pub critical: u64,
    /// Accounts whose outbound mail is suspended there now.
    pub suspended: u64,
    /// Addresses held there now.
    pub held: u64,
    pub not_audited: Vec<crate::state::NotAudited>,
}

/// Read the page's data: this server's last `nights` runs and what is held here, and the open
/// findings, notices and suspensions of `scope`.
pub fn load(state: &State, nights: usize, scope: Scope) -> Result<Page> {
    // In one transaction on a shared state (its settings: no JIT); a SQLite state is read as
    // it is (a transaction there would take the write lock).
    state.reading(|| load_now(state, nights, scope))
}

fn load_now(state: &State, nights: usize, scope: Scope) -> Result<Page> {
    let on = match scope {
        Scope::Server => Some(state.server()),
        Scope::Fleet => None,
    };
    let runs = state.last_runs(nights.max(1))?;
    let notices = state.open_notices(LISTED, on)?;
    let suspended = state.suspensions_in_force(LISTED, on)?;
    let suspend_problems = state.suspend_problems(LISTED, on)?;
    let fleet = match scope {
        Scope::Server => Vec::new(),
        Scope::Fleet => fleet_rows(state)?,
    };
    let (held, held_total) = state.held(LISTED)?;
    let (owners, domains) = state.top_open(TOP, on)?;
    Ok(Page {
        runs,
        owners,
        domains,
        notices,
        suspended,
        suspend_problems,
        held,
        held_total,
        fleet,
        server: state.server().to_string(),
        scope,
        fetch: crate::state::fetch_report::reports(state)?
            .into_iter()
            .filter(|(server, _)| on.is_none_or(|me| me == server))
            .map(FetchRow::from)
            .collect(),
        generated: crate::state::now(),
    })
}

/// One row per server of the ledger: its last run, what it holds now.
fn fleet_rows(state: &State) -> Result<Vec<FleetRow>> {
    let mut rows = Vec::new();
    for run in state.fleet_runs()? {
        let suspended = state.suspensions_in_force_on(&run.server)?;
        let (_, held) = state.held_on(&run.server, 0)?;
        let mut not_audited = run.not_audited();
        not_audited.truncate(LISTED);
        rows.push(FleetRow {
            server: run.server.clone(),
            last_run: run.row.started.clone(),
            complete: run.row.complete,
            accounts: run.row.accounts,
            at_risk: run.row.at_risk,
            critical: run.row.critical,
            suspended,
            held,
            not_audited,
        });
    }
    Ok(rows)
}

/// `+3`, `−2`, `no change`, or nothing when either side is unknown.
fn change(now: Option<u64>, before: Option<u64>, worse_when_up: bool) -> (String, &'static str) {
    let (Some(a), Some(b)) = (now, before) else {
        return (String::new(), "same");
    };
    let up = a > b;
    let tone = match (a == b, up == worse_when_up) {
        (true, _) => "same",
        (false, true) => "worse",
        (false, false) => "better",
    };
    let text = match a.cmp(&b) {
        std::cmp::Ordering::Equal => "no change".to_string(),
        std::cmp::Ordering::Greater => format!("+{} since the previous run", a - b),
        std::cmp::Ordering::Less => format!("\u{2212}{} since the previous run", b - a),
    };
    (text, tone)
}

/// Tonight's numbers (the last run) against the run before.
pub fn tiles(runs: &[Run]) -> Vec<Tile> {
    let Some(now) = runs.last() else {
        return Vec::new();
    };
    let before = runs.len().checked_sub(2).map(|i| &runs[i]);
    type Get = fn(&Run) -> Option<u64>;
    let rows: [(&'static str, Get, bool, &'static str); 15] = [
        ("accounts audited", |r| Some(r.row.accounts), false, ""),
        ("at risk", |r| Some(r.row.at_risk), true, "total"),
        ("critical", |r| Some(r.row.critical), true, "sev-critical"),
        ("high", |r| Some(r.row.high), true, "sev-high"),
        ("medium", |r| Some(r.row.medium), true, "sev-medium"),
        ("unknown", |r| Some(r.row.unknown), true, "sev-unknown"),
        ("new findings", |r| Some(r.row.new_findings), true, ""),
        (
            "notices sent",
            |r| r.after.map(|a| a.notices_sent),
            false,
            "",
        ),
        (
            "notices pending",
            |r| r.after.map(|a| a.notices_pending),
            true,
            "",
        ),
        (
            "notices failed or held",
            |r| r.after.map(|a| a.notices_failed + a.notices_held),
            true,
            "",
        ),
        (
            "suspensions applied",
            |r| r.after.map(|a| a.suspended),
            true,
            "",
        ),
        (
            "suspensions released",
            |r| r.after.map(|a| a.released),
            false,
            "",
        ),
        (
            "domains not audited",
            |r| Some(r.not_audited().len() as u64),
            true,
            "",
        ),
        (
            "accounts held (not audited)",
            |r| Some(r.row.held_addresses),
            true,
            "",
        ),
        (
            "accounts retired (removed)",
            |r| Some(r.row.retired),
            false,
            "",
        ),
    ];
    rows.into_iter()
        .map(|(label, get, worse_when_up, class)| {
            let v = get(now);
            let (change, tone) = match before {
                Some(b) => change(v, get(b), worse_when_up),
                None => ("first run".to_string(), "same"),
            };
            Tile {
                label,
                value: v.map_or("\u{2013}".to_string(), |v| v.to_string()),
                change,
                tone,
                class,
            }
        })
        .collect()
}

fn date_of(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_string()
}

/// Tonight's sources with their rows read and rejected, when they last changed, and whether
/// that was since the previous run.
fn source_rows(runs: &[Run]) -> Vec<SourceRow> {
    let Some(now) = runs.last() else {
        return Vec::new();
    };
    let before = runs.len().checked_sub(2).map(|i| &runs[i]);
    let num = |v: &serde_json::Value| v.as_u64().map_or("\u{2013}".to_string(), |n| n.to_string());
    let earlier = before.map(Run::sources).unwrap_or_default();
    now.sources()
        .iter()
        .map(|s| {
            let path = s["path"].as_str().unwrap_or("").to_string();
            let same = |o: &serde_json::Value| o["path"].as_str() == Some(path.as_str());
            let earlier = earlier.iter().find(|o| same(o));
            let changed_tonight = earlier.is_some_and(|o| {
                o["mtime"] != s["mtime"]
                    || o["size"] != s["size"]
                    || o["fingerprint"] != s["fingerprint"]
            });
            SourceRow {
                kind: s["kind"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("--")
                    .to_string(),
                path,
                rows: num(&s["rows"]),
                rejected: num(&s["rejected"]),
                last_changed: s["mtime"].as_i64().map_or("\u{2013}".to_string(), date_of),
                changed_tonight,
            }
        })
        .collect()
}

/// The page as HTML.
pub fn render(page: &Page) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.add_template("page.html", include_str!("page.html"))
        .map_err(|e| Error::Usage(format!("the page template: {e}")))?;
    use minijinja::Value as V;
    fn ser<T: Serialize>(x: T) -> V {
        V::from(minijinja::value::Serde(x))
    }
    let tonight = page.runs.last();
    let ctx = minijinja::context! {
        generated => page.generated.clone(),
        has_runs => tonight.is_some(),
        date => tonight.map(Run::date),
        started => tonight.map(|r| r.row.started.clone()),
        complete => tonight.is_none_or(|r| r.row.complete),
        rebuilt => tonight.is_some_and(|r| r.row.index_rebuilt),
        runs => page.runs.len(),
        tiles => ser(tiles(&page.runs)),
        chart => V::from_safe_string(chart::svg(&page.runs)),
        rebuilds => page.runs.iter().filter(|r| r.row.index_rebuilt).count(),
        owners => ser(&page.owners),
        domains => ser(&page.domains),
        sources => ser(source_rows(&page.runs)),
        notices => ser(&page.notices),
        suspended => ser(&page.suspended),
        suspend_problems => ser(&page.suspend_problems),
        held => ser(&page.held),
        held_total => page.held_total,
        fleet => ser(&page.fleet),
        show_fleet => page.fleet.len() > 1 || page.fleet.iter().any(|f| !f.server.is_empty()),
        server => page.server.clone(),
        server_page => page.scope == Scope::Server && !page.server.is_empty(),
        fleet_total => ser(FleetRow {
            server: "total".into(),
            last_run: String::new(),
            complete: page.fleet.iter().all(|f| f.complete),
            accounts: page.fleet.iter().map(|f| f.accounts).sum(),
            at_risk: page.fleet.iter().map(|f| f.at_risk).sum(),
            critical: page.fleet.iter().map(|f| f.critical).sum(),
            suspended: page.fleet.iter().map(|f| f.suspended).sum(),
            held: page.fleet.iter().map(|f| f.held).sum(),
            not_audited: Vec::new(),
        }),
        fetch => ser(&page.fetch),
        logins => ser(tonight.and_then(|r| r.logins())),
        not_audited => ser(tonight.map(|r| {
            let mut list = r.not_audited();
            list.truncate(LISTED);
            list
        })),
    };
    env.get_template("page.html")
        .and_then(|t| t.render(ctx))
        .map_err(|e| Error::Usage(format!("rendering the page: {e}")))
}

/// Tonight's summary in a few lines of text (the operator's message carries it).
pub fn summary_text(page: &Page) -> String {
    let Some(now) = page.runs.last() else {
        return "no runs yet".to_string();
    };
    let mut out = format!(
        "Run of {}{}:\n",
        now.row.started,
        if now.row.complete {
            ""
        } else {
            " (INCOMPLETE)"
        }
    );
    for t in tiles(&page.runs) {
        let change = if t.change.is_empty() {
            String::new()
        } else {
            format!(" ({})", t.change)
        };
        out.push_str(&format!("  {}: {}{change}\n", t.label, t.value));
    }
    out
}

/// Render the `scope` page of `state`'s last `nights` runs to `path` (atomically, mode 0600).
pub fn write(state: &State, path: &Path, nights: usize, scope: Scope) -> Result<()> {
    let html = render(&load(state, nights, scope)?)?;
    let mut f = crate::fsutil::AtomicFile::create(path)?;
    std::io::Write::write_all(&mut f, html.as_bytes()).at(path)?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_signed_and_coloured_by_what_is_worse() {
        assert_eq!(
            change(Some(5), Some(3), true),
            ("+2 since the previous run".into(), "worse")
        );
        assert_eq!(
            change(Some(3), Some(5), true),
            ("\u{2212}2 since the previous run".into(), "better")
        );
        assert_eq!(change(Some(3), Some(5), false).1, "worse");
        assert_eq!(change(Some(4), Some(4), true), ("no change".into(), "same"));
        assert_eq!(change(Some(4), None, true).0, "");
    }

    #[test]
    fn what_operators_and_customers_wrote_is_escaped_not_markup() {
        let mut run = example("2026-11-02T02:00:00Z", [1, 0, 0, 0]);
        run.row.not_audited = serde_json::to_string(&[crate::state::NotAudited {
            domain: "x.example".into(),
            path: "/home/<b>bad</b>/passwd".into(),
            reason: "owner \"R&D\" <script>alert(1)</script>".into(),
        }])
        .unwrap();
        let page = Page {
            runs: vec![run],
            owners: vec![Top {
                name: "<img src=x onerror=alert(1)>".into(),
                accounts: 1,
                critical: 1,
            }],
            domains: Vec::new(),
            notices: Vec::new(),
            suspended: vec![SuspendedRow {
                address: "a@x.example".into(),
                platform: "directadmin".into(),
                target: "/srv/<i>da</i>/blacklist".into(),
                since: "now".into(),
                server: String::new(),
            }],
            suspend_problems: vec![("b@x.example".into(), "failed: <u>uapi</u>".into())],
            held: vec![crate::state::Held {
                address: "c@x.example".into(),
                reason: "file <em>refused</em>".into(),
                since: "then".into(),
                nights: 3,
                uncertain: true,
            }],
            held_total: 1,
            fleet: Vec::new(),
            server: String::new(),
            scope: Scope::Fleet,
            fetch: Vec::new(),
            generated: "now".into(),
        };
        let html = render(&page).unwrap();
        assert!(!html.contains("<script>alert") && !html.contains("<img src=x"));
        assert!(!html.contains("<i>da") && !html.contains("<u>uapi") && !html.contains("<em>"));
        assert!(html.contains("c@x.example") && html.contains("a@x.example"));
        assert!(!html.contains("<b>bad"));
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "owner not escaped"
        );
        assert!(html.contains("R&amp;D"));
        assert!(html.contains("id=\"owners\"") && html.contains("id=\"domains\""));
    }

    #[test]
    fn tonight_is_the_last_run_against_the_one_before() {
        let a = example("2026-11-01T02:00:00Z", [1, 1, 0, 0]);
        let mut b = example("2026-11-02T02:00:00Z", [3, 1, 0, 0]);
        b.after = Some(crate::state::AfterRun {
            notices_sent: 2,
            ..Default::default()
        });
        let t = tiles(&[a, b]);
        let get = |l: &str| t.iter().find(|t| t.label == l).unwrap();
        assert_eq!(get("at risk").value, "4");
        assert_eq!(get("at risk").change, "+2 since the previous run");
        assert_eq!(get("critical").tone, "worse");
        // Unknown before (an older run row): a value, no change.
        assert_eq!(get("notices sent").value, "2");
        assert_eq!(get("notices sent").change, "");
        assert_eq!(get("suspensions applied").change, "");
        // A run recorded before its notices were counted: "–", not 0.
        let old = tiles(&[example("2026-11-01T02:00:00Z", [1, 1, 0, 0])]);
        let v = |l: &str| old.iter().find(|t| t.label == l).unwrap().value.clone();
        assert_eq!(v("suspensions applied"), "\u{2013}");
        assert_eq!(v("at risk"), "2");
    }
}
