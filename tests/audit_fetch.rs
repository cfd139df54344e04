//! `[fetch]` in the nightly job, against the real nginx mirror of the fetch tests (HTTP/2, TLS,
//! ETags) on three shards of prefixes: a fetch that changed nothing rebuilds nothing, changed
//! ranges rebuild once, a fetch that fails never blocks the night and is retried the next one.

mod common;

use common::nginx::Nginx;
use common::{Workdir, cron};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::nginx::{SUBSET, SUBSET_LAST as LAST, make_dump};

/// One range file as the API serves it (no padding rows).
fn write_range(dir: &Path, prefix: u32, dump: &BTreeMap<String, u32>) {
    common::nginx::write_range(dir, prefix, dump, false);
}

fn config(w: &Workdir, n: &Nginx, every: &str, extra: &str) -> String {
    w.write(
        &format!("audit-{every}.toml"),
        format!(
            "index = \"idx\"\nstate = \"state\"\nout = \"out\"\naccounts_csv = [\"accounts.csv\"]\n{extra}\n\
             [fetch]\nhibp = \"store\"\nevery = \"{every}\"\nbase_url = \"{}\"\nca_file = {:?}\n\
             prefixes = \"{SUBSET}\"\nparallel = 32\nretries = 0\n",
            n.https_url(),
            n.ca().display().to_string()
        ),
    )
    .display()
    .to_string()
}

fn audit(w: &Workdir, cfg: &str) -> common::Run {
    w.run(&["audit", "--config", cfg])
}

fn run_json(w: &Workdir) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(w.path("out/run.json")).unwrap()).unwrap()
}

fn manifest(w: &Workdir) -> (Vec<u8>, u64) {
    let bytes = std::fs::read(w.path("idx/manifest.json")).unwrap();
    let ino = std::fs::metadata(w.path("idx")).unwrap().ino();
    (bytes, ino)
}

fn manifest_json(w: &Workdir) -> serde_json::Value {
    serde_json::from_slice(&manifest(w).0).unwrap()
}

/// Status counts of nginx's access log.
fn statuses(n: &Nginx) -> BTreeMap<u16, usize> {
    let mut m = BTreeMap::new();
    for (_, s, ..) in n.log() {
        *m.entry(s).or_default() += 1;
    }
    m
}

fn lookups(w: &Workdir, hashes: &[&str]) -> Vec<String> {
    let input: String = hashes.iter().map(|h| format!("{h}\n")).collect();
    let r = w.run_stdin(&["lookup", "--index", "idx", "--hashes"], input.as_bytes());
    assert!(r.code == 0 || r.code == 1, "lookup: {}", r.stderr);
    r.out().lines().map(String::from).collect()
}

/// The text of the page's HIBP data row (`out/report.html` as Chromium builds it), and whether it
/// carries each red flag.
fn page_fetch_row(w: &Workdir) -> (String, bool, bool) {
    use common::chromium::{section, text_of};
    let dom = common::chromium::dom(&w.path("out/report.html"), &w.path("chromium"));
    let fetch = section(&dom, "fetch");
    let at = fetch.find("data-fetch=").expect("a row of the HIBP data");
    let row = &fetch[at..fetch[at..].find("</tr>").map_or(fetch.len(), |e| at + e)];
    (
        text_of(&format!("<{row}")),
        row.contains("<span class=\"flag bad\">STALE</span>"),
        row.contains("<span class=\"flag bad\">LAST FETCH FAILED</span>"),
    )
}

/// A mirror serving every range of a generated dump (`make_dump(seed, n)`) and a work directory
/// whose one account has the dump's first hash: what each night below starts from.
fn mirror_and_account(seed: u64, n: usize) -> (Nginx, BTreeMap<String, u32>, Workdir) {
    let mirror = Nginx::start();
    let dump = make_dump(seed, n);
    for p in 0..=LAST {
        write_range(&mirror.range_dir(), p, &dump);
    }
    let w = Workdir::new();
    let pwned = dump.keys().next().unwrap().clone();
    w.write(
        "accounts.csv",
        format!("email,hash\nuser@example.com,{pwned}\n"),
    );
    (mirror, dump, w)
}

/// Wait until a fetch made now is older than `every = "1s"` (whole seconds apart).
fn let_a_second_pass() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

#[test]
fn five_nights_fetch_when_due_rebuild_only_on_change_and_survive_a_mirror_down() {
    let mut n = Nginx::start();
    let mut dump = make_dump(71, 4);
    for p in 0..=LAST {
        write_range(&n.range_dir(), p, &dump);
    }
    let w = Workdir::new();
    let pwned: Vec<String> = dump.keys().step_by(97).take(5).cloned().collect();
    w.write(
        "accounts.csv",
        format!("email,hash\nuser@example.com,{}\n", pwned[0]),
    );

    // Night 1: never fetched: the fetch runs, the index is built from the store.
    let cfg = config(&w, &n, "1s", "");
    let r = audit(&w, &cfg);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("index rebuilt"), "{}", r.stderr);
    let run = run_json(&w);
    let f = &run["fetch"];
    assert_eq!(f["ran"], true, "{run}");
    assert_eq!(f["failed"], false, "{run}");
    assert_eq!(f["due"], "never fetched", "{run}");
    assert_eq!(f["ranges_changed"], 768, "{run}");
    assert_eq!(f["stale"], false, "{run}");
    assert_eq!(f["index_built_from_run"], 1, "{run}");
    assert!(f["index_data_age_days"].as_f64().unwrap() < 1.0, "{run}");
    // The page shows the same: when, how many ranges, the data's age, not flagged.
    let (row, stale, failed) = page_fetch_row(&w);
    let want = format!(
        "sha1 {} {} 768 {:.1} {} (fetch run 1) current",
        f["hibp"].as_str().unwrap(),
        f["last_fetched_at"].as_str().unwrap(),
        f["index_data_age_days"].as_f64().unwrap(),
        f["index_data_at"].as_str().unwrap(),
    );
    assert_eq!(row, want);
    assert!(!stale && !failed, "{row}");
    let m = manifest_json(&w);
    assert_eq!(m["sources"][0]["kind"], "hibp");
    assert_eq!(m["sources"][0]["fetch"]["run"], 1, "{m}");
    assert_eq!(m["sources"][0]["fetch"]["changed"], 768, "{m}");
    assert_eq!(
        m["sources"].as_array().unwrap().len(),
        1,
        "the store is named once: {m}"
    );
    let counts = |dump: &BTreeMap<String, u32>| -> Vec<String> {
        pwned.iter().map(|h| dump[h].to_string()).collect()
    };
    let hashes: Vec<&str> = pwned.iter().map(String::as_str).collect();
    assert_eq!(lookups(&w, &hashes), counts(&dump));

    // Night 2: due (every = 1s), nothing changed on the mirror: 304s, no rebuild.
    let before = manifest(&w);
    n.clear_log();
    let_a_second_pass();
    let r = audit(&w, &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("index unchanged"), "{}", r.stderr);
    assert_eq!(
        manifest(&w),
        before,
        "the manifest bytes and the index inode are the same"
    );
    assert_eq!(statuses(&n), BTreeMap::from([(304, 768)]));
    let run = run_json(&w);
    assert_eq!(run["fetch"]["ran"], true, "{run}");
    assert_eq!(run["fetch"]["ranges_changed"], 0, "{run}");
    assert_eq!(run["index_rebuilt"], false, "{run}");
    // `info` shows the same.
    let r = w.run(&["info", "--config", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.out().contains("fetched      sha1 store, run 1"),
        "{}",
        r.out()
    );
    assert!(
        r.out().contains("fetch        HIBP data (sha1, "),
        "{}",
        r.out()
    );
    assert!(
        r.out()
            .contains("0 ranges changed or added by the last fetch"),
        "{}",
        r.out()
    );

    // Night 3: five ranges changed: one rebuild, and lookup sees the new counts.
    for h in &pwned {
        *dump.get_mut(h).unwrap() += 100_000;
        write_range(
            &n.range_dir(),
            u32::from_str_radix(&h[..5], 16).unwrap(),
            &dump,
        );
    }
    let build_before = manifest_json(&w)["build_id"].clone();
    let_a_second_pass();
    let r = audit(&w, &cfg);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("index rebuilt"), "{}", r.stderr);
    let run = run_json(&w);
    assert_eq!(run["fetch"]["ranges_changed"], 5, "{run}");
    assert_eq!(run["fetch"]["index_built_from_run"], 3, "{run}");
    let m = manifest_json(&w);
    assert_ne!(m["build_id"], build_before);
    assert_eq!(m["sources"][0]["fetch"]["run"], 3, "{m}");
    assert_eq!(m["sources"][0]["fetch"]["changed"], 5, "{m}");
    assert_eq!(lookups(&w, &hashes), counts(&dump));
    // Exactly one: the next run (not due) does not rebuild again.
    let after = manifest(&w);
    let cfg_month = config(&w, &n, "30d", "");
    let r = audit(&w, &cfg_month);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("index unchanged"), "{}", r.stderr);
    assert_eq!(manifest(&w), after);
    assert_eq!(run_json(&w)["fetch"]["ran"], false);
    // Not due, so tonight's probe asked a sample (256 by default) conditionally: unchanged.
    assert_eq!(
        run_json(&w)["fetch"]["probe"],
        "unchanged since the last fetch (256 of 256 sampled ranges unchanged)"
    );

    // Night 4: the mirror is down. The audit runs on the index it has, with the alert; the cron
    // wrapper exits 6.
    n.stop();
    let cfg = config(&w, &n, "1s", "");
    let_a_second_pass();
    let r = cron(&cfg);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr.contains("breach-audit: warning: fetch failed: "),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("retried on the next run"), "{}", r.stderr);
    assert_eq!(manifest(&w), after, "the index is the one it had");
    let run = run_json(&w);
    assert_eq!(run["fetch"]["ran"], true, "{run}");
    assert_eq!(run["fetch"]["failed"], true, "{run}");
    assert_eq!(run["complete"], true, "every account was audited: {run}");
    assert!(
        run["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("fetch failed: ")),
        "{run}"
    );
    // The page flags the failed fetch, with its cause and when it was tried.
    let (row, stale, failed) = page_fetch_row(&w);
    assert!(failed && !stale, "{row}");
    assert!(
        row.contains(&format!(
            "LAST FETCH FAILED at {}: {}",
            run["fetch"]["last_attempt_at"].as_str().unwrap(),
            run["fetch"]["error"].as_str().unwrap()
        )) && row.contains("retried on the next run"),
        "{row}"
    );
    // The audit itself exits as always (nothing new).
    let r = w.run(&["audit", "--config", &cfg, "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Night 5: the mirror is back; `every` (30 days) has not elapsed, but the last attempt
    // failed: the fetch runs again (all 304s), nothing to rebuild.
    n.restart();
    n.clear_log();
    let r = audit(&w, &cfg_month);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = run_json(&w);
    assert_eq!(run["fetch"]["ran"], true, "{run}");
    assert_eq!(run["fetch"]["due"], "the last fetch failed", "{run}");
    assert_eq!(run["fetch"]["failed"], false, "{run}");
    assert_eq!(statuses(&n), BTreeMap::from([(304, 768)]));
    assert_eq!(manifest(&w), after);
    // And the night after that: not due.
    let r = cron(&cfg_month);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = run_json(&w);
    assert_eq!(run["fetch"]["ran"], false, "{run}");

    // Night 6: new data within `every`: three ranges change. The probe (here every range of the
    // subset, so that it cannot miss) finds them and makes the fetch due at once: one rebuild.
    for h in pwned.iter().take(3) {
        *dump.get_mut(h).unwrap() += 7;
        write_range(
            &n.range_dir(),
            u32::from_str_radix(&h[..5], 16).unwrap(),
            &dump,
        );
    }
    let cfg_probe = w
        .write(
            "audit-probe.toml",
            std::fs::read_to_string(&cfg_month).unwrap() + "probe = 1024\n",
        )
        .display()
        .to_string();
    let r = audit(&w, &cfg_probe);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("index rebuilt"), "{}", r.stderr);
    let run = run_json(&w);
    assert_eq!(run["fetch"]["ran"], true, "{run}");
    assert_eq!(
        run["fetch"]["due"], "tonight's probe found 3 of 768 sampled ranges changed",
        "{run}"
    );
    assert_eq!(run["fetch"]["ranges_changed"], 3, "{run}");
    assert_eq!(lookups(&w, &hashes), counts(&dump));
}

#[test]
fn a_server_that_does_not_rebuild_is_refused_a_fetch_section() {
    let n = Nginx::start();
    let w = Workdir::new();
    w.write("accounts.csv", "email,hash\nuser@example.com,{PLAIN}x\n");
    let cfg = config(&w, &n, "30d", "rebuild = false");
    let r = audit(&w, &cfg);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("`rebuild = false`") && r.stderr.contains("[fetch]"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("install-index"), "{}", r.stderr);
    assert!(!w.path("store").exists(), "nothing fetched");
    // A different HIBP source beside the store is refused too, naming both.
    let cfg = config(&w, &n, "30d", "hibp = [\"other.txt\"]");
    let r = audit(&w, &cfg);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("other.txt") && r.stderr.contains("[fetch] hibp"),
        "{}",
        r.stderr
    );
    assert!(n.log().is_empty(), "nothing asked of the mirror");
}

#[test]
fn a_first_fetch_that_fails_with_no_index_fails_closed_saying_what_to_do() {
    let (mut n, _, w) = mirror_and_account(5, 2);
    let cfg = config(&w, &n, "30d", "");
    // Night 1 with the mirror down: no index to fall back on. The error says the fetch failed
    // and why, that there is no index, and what to do; not a build's error about the store.
    n.stop();
    let r = audit(&w, &cfg);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for want in [
        "the first fetch of the HIBP data into",
        "failed (",
        "there is no index to fall back on, so nothing was audited",
        &format!("base_url ({})", n.https_url()),
        "breach-audit fetch --hibp ",
    ] {
        assert!(r.stderr.contains(want), "{want:?} in {}", r.stderr);
    }
    assert!(!r.stderr.contains("build"), "{}", r.stderr);
    assert!(!w.path("idx").exists(), "no index made");
    assert!(!w.path("out/run.json").exists(), "no run recorded");
    // The cron wrapper passes the failure on (2: the audit could not run).
    assert_eq!(cron(&cfg).code, 2);
    // With the mirror back, the next night fetches, builds and audits.
    n.restart();
    let r = audit(&w, &cfg);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let run = run_json(&w);
    assert_eq!(run["fetch"]["due"], "the last fetch failed", "{run}");
    assert_eq!(run["fetch"]["failed"], false, "{run}");
    assert_eq!(run["fetch"]["ranges_changed"], 768, "{run}");
}

#[test]
fn a_store_that_never_completed_a_fetch_never_replaces_the_index_the_server_has() {
    let (mut n, dump, w) = mirror_and_account(6, 2);
    // Before [fetch]: an index built from a downloaded dump.
    let text: String = dump.iter().map(|(h, c)| format!("{h}:{c}\n")).collect();
    w.write("dump.txt", text);
    let before_cfg = w
        .write(
            "before.toml",
            "index = \"idx\"\nstate = \"state\"\nout = \"out\"\naccounts_csv = [\"accounts.csv\"]\nhibp = [\"dump.txt\"]\n",
        )
        .display()
        .to_string();
    let r = audit(&w, &before_cfg);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let index = manifest(&w);

    // [fetch] added (the dump's line removed), and the first fetch fails part-way (the mirror
    // stops answering): the store holds no complete fetch, and the index is kept as it is.
    let cfg = config(&w, &n, "30d", "");
    n.stop();
    let r = audit(&w, &cfg);
    assert_eq!(r.code, 0, "the audit ran on the index it had: {}", r.stderr);
    assert!(
        r.stderr
            .contains("is kept as it is: the HIBP store has not completed a fetch yet"),
        "{}",
        r.stderr
    );
    assert_eq!(manifest(&w), index, "not rebuilt from the store");
    let run = run_json(&w);
    assert_eq!(run["fetch"]["failed"], true, "{run}");
    assert_eq!(run["accounts"], 1, "{run}");
    // By hand too: build refuses a store that never completed a fetch, naming the fix. (Its
    // record exists: the failed run wrote it.)
    assert!(w.path("store/.breach-audit-fetch.json").exists());
    let r = w.run(&["build", "--index", "idx2", "--hibp", "store"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("fetch has never completed")
            && r.stderr.contains("breach-audit fetch --hibp"),
        "{}",
        r.stderr
    );
    assert!(!w.path("idx2").exists());
}
