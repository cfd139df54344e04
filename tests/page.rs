//! The operator's page, rendered by real headless Chromium (Debian's `chromium`): a state with 30
//! runs (29 recorded by `gendata runs`, tonight a real `audit` of the sample data) must show
//! tonight's numbers in the DOM Chromium builds, and its chart must be drawn (pixels of the
//! severity colours where the chart is); a state with one run and one with none render too.
//! Chromium missing is a failure with the fix, never a skip.

mod common;

use common::Workdir;
use common::chromium::{section, text_of};
use std::path::Path;
use std::process::Command;

/// Record `nights - 1` past runs in `out/state` (the library's sample history), then run
/// scripts/sample-page.sh into `out`: tonight's real audit (of the sample DirectAdmin tree plus a
/// domain whose account file is missing) and Chromium's renderings.
fn sample_page(out: &Path, nights: u64) {
    let state = out.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let da = out.join("da");
    common::directadmin_with_missing_domain(&da);
    let mut st = breach_audit::State::open(&state).unwrap();
    breach_audit::testing::sample_history(&mut st, nights - 1, 7).unwrap();
    drop(st);
    let st = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/sample-page.sh"
        ))
        .arg(out)
        .arg(nights.to_string())
        .env("BREACH_AUDIT", env!("CARGO_BIN_EXE_breach-audit"))
        .env("HISTORY", "ready")
        .env("DIRECTADMIN", &da)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "scripts/sample-page.sh failed (is Debian's chromium installed? scripts/test.sh installs it):\n{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// `breach-audit report` of `state` into the work directory's `name`.
fn report_page(w: &Workdir, state: &Path, name: &str) -> std::path::PathBuf {
    let page = w.path(name);
    let r = w.run(&[
        "report",
        "--state",
        state.to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    page
}

fn pixels(png_path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![
        0;
        r.output_buffer_size()
            .expect("a frame size that fits memory")
    ];
    let info = r.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    assert!(step >= 3, "{:?}", info.color_type);
    let px = buf[..info.buffer_size()]
        .chunks(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, px)
}

/// Close to `want` (screenshots blend edges; bar interiors are exact).
fn near(p: [u8; 3], want: [u8; 3]) -> bool {
    p.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 6)
}

#[test]
fn the_page_of_thirty_runs_shows_tonights_numbers_and_draws_its_chart() {
    let w = Workdir::new();
    let out = w.path("page");
    sample_page(&out, 30);
    // Tonight's numbers, from the audit's own run.json.
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("out/run.json")).unwrap()).unwrap();
    let dom = std::fs::read_to_string(out.join("dom.html")).unwrap();
    let tonight = text_of(section(&dom, "tonight"));
    let tile = |label: &str| -> String {
        // "<value> <label> <change>": the value is the word before the label.
        let at = tonight
            .find(&format!(" {label} "))
            .unwrap_or_else(|| panic!("no tile {label:?} in {tonight}"));
        tonight[..at].rsplit(' ').next().unwrap().to_string()
    };
    assert_eq!(tile("accounts audited"), run["accounts"].to_string());
    for sev in ["critical", "high", "medium", "unknown"] {
        assert_eq!(tile(sev), run["at_risk"][sev].to_string(), "{sev}");
    }
    assert_eq!(tile("at risk"), run["at_risk"]["total"].to_string());
    assert_eq!(tile("new findings"), run["new_findings"].to_string());
    let not_audited = run["not_audited"].as_array().unwrap();
    assert!(
        !not_audited.is_empty(),
        "the test's tree has a domain not audited"
    );
    assert_eq!(tile("domains not audited"), not_audited.len().to_string());
    // Each tile says how it changed since the 29th run.
    assert!(tonight.contains("since the previous run") || tonight.contains("no change"));
    // The not-audited list names the domain and why; the chart covers 30 runs.
    let listed = text_of(section(&dom, "not-audited"));
    assert!(
        listed.contains(not_audited[0]["domain"].as_str().unwrap()),
        "{listed}"
    );
    assert!(dom.contains("last 30 runs"));
    // No [fetch] in the sample's config: nothing fetch-related.
    assert!(!dom.contains("id=\"fetch\"") && !dom.contains("HIBP data"));
    assert!(dom.contains("INCOMPLETE"));
    // Nothing secret: the sample's passwords and stored hashes appear nowhere in the page.
    let html = std::fs::read_to_string(out.join("out/report.html")).unwrap();
    let combo = std::fs::read_to_string(common::sample("combolists/customers.txt")).unwrap();
    let mut secrets: Vec<String> = combo
        .lines()
        .filter_map(|l| l.split_once(':').map(|(_, p)| p.to_string()))
        .collect();
    let passwd = std::fs::read_to_string(common::sample(
        "servers/directadmin/etc/virtual/example.com/passwd",
    ))
    .unwrap();
    secrets.extend(
        passwd
            .lines()
            .filter_map(|l| l.split(':').nth(1).map(String::from)),
    );
    assert!(secrets.len() > 10 && secrets.iter().any(|s| s.starts_with("$6$")));
    for secret in secrets.iter().filter(|s| s.len() >= 6) {
        assert!(
            !html.contains(secret.as_str()),
            "a password or hash of the sample is in the page"
        );
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("out/report.html"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // Self-contained: nothing fetched from anywhere.
    for outside in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(outside), "{outside} in the page");
    }

    // The chart alone, as Chromium drew it: mostly bars of the severity colours, not blank.
    let (wd, ht, px) = pixels(&out.join("chart.png"));
    assert!(wd >= 700 && ht >= 200, "{wd}x{ht}");
    let background = px.iter().filter(|p| near(**p, [255, 255, 255])).count();
    let colour = |c: [u8; 3]| px.iter().filter(|p| near(**p, c)).count();
    let (critical, high, medium) = (
        colour([0xb3, 0x26, 0x1e]),
        colour([0xd9, 0x48, 0x0f]),
        colour([0xc9, 0x94, 0x00]),
    );
    assert!(
        px.len() - background > px.len() / 20,
        "the chart is blank: {background} of {} pixels are background",
        px.len()
    );
    assert!(
        critical > 200 && high > 200 && medium > 200,
        "severity bars not drawn: critical {critical}, high {high}, medium {medium} pixels"
    );
    // The full page and the phone-width page were rendered as well.
    for f in ["page.png", "phone.png"] {
        let (_, _, px) = pixels(&out.join(f));
        assert!(px.iter().any(|p| near(*p, [0xb3, 0x26, 0x1e])), "{f}");
    }
}

#[test]
fn a_state_with_one_run_or_none_renders_without_errors() {
    let w = Workdir::new();
    // One run: tonight's audit only.
    let one = w.path("one");
    sample_page(&one, 1);
    let dom = std::fs::read_to_string(one.join("dom.html")).unwrap();
    assert!(text_of(section(&dom, "tonight")).contains("first run"));
    assert!(dom.contains("last 1 run<"));

    // None: a state database with no run yet.
    let none = w.path("none");
    std::fs::create_dir_all(&none).unwrap();
    drop(breach_audit::State::open(&none).unwrap());
    let page = report_page(&w, &none, "none.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("no runs yet"));
    assert!(common::chromium::dom(&page, &w.path("profile")).contains("no runs yet"));

    // Not a state at all: an error naming the directory, not an empty page.
    let r = w.run(&["report", "--state", w.path("nowhere").to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("nowhere") && r.stderr.contains("no breach-audit state"),
        "{}",
        r.stderr
    );
}

/// A fleet's fetch reports as its servers' audits record them (`fetch:NAME` in the state's
/// `meta`): london current, paris stale and its last fetch failed. Real fetches are rendered by
/// tests/audit_fetch.rs; this is the flags.
#[test]
fn a_stale_index_and_a_failed_fetch_are_flagged_on_the_page() {
    let w = Workdir::new();
    let state = w.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut st = breach_audit::State::open(&state).unwrap();
    breach_audit::testing::sample_history(&mut st, 3, 7).unwrap();
    let report = |server: &str, extra: &str| {
        st.set_meta(
            &format!("fetch:{server}"),
            &format!(
                "{{\"hibp\":\"/srv/{server}/hibp\",\"mode\":\"sha1\",\"every\":\"30days\",\"ran\":true,\"last_fetched_at\":\"2026-10-01T02:00:00Z\",\"last_attempt_at\":\"2026-11-20T02:00:00Z\",\"index_built_from_run\":4,\"index_data_at\":\"2026-10-01T02:00:00Z\",{extra}}}"
            ),
        )
        .unwrap();
    };
    report(
        "london",
        "\"ranges_changed\":17,\"index_data_age_days\":2.5,\"stale\":false,\"failed\":false",
    );
    report(
        "paris",
        "\"ranges_changed\":0,\"index_data_age_days\":50.2,\"stale\":true,\"failed\":true,\"error\":\"api.example: connection refused\",\"failed_ranges\":768",
    );
    drop(st);
    let page = report_page(&w, &state, "page.html");
    let dom = common::chromium::dom(&page, &w.path("profile"));
    let fetch = section(&dom, "fetch");
    let row = |server: &str| -> String {
        let at = fetch
            .find(&format!("data-fetch=\"{server}\""))
            .unwrap_or_else(|| panic!("no row of {server}: {fetch}"));
        let rest = &fetch[at..];
        rest[..rest.find("</tr>").unwrap()].to_string()
    };
    let (london, paris) = (row("london"), row("paris"));
    let text = text_of(&format!("<{london}"));
    assert!(
        text.ends_with(
            "sha1 /srv/london/hibp 2026-10-01T02:00:00Z 17 2.5 2026-10-01T02:00:00Z (fetch run 4) current"
        ),
        "{text}"
    );
    assert!(!london.contains("flag bad"), "{london}");
    // paris: both flags, as the page's red flags, with the cause and when it was tried.
    assert!(
        paris.contains("<span class=\"flag bad\">STALE</span>")
            && paris.contains("<span class=\"flag bad\">LAST FETCH FAILED</span>"),
        "{paris}"
    );
    let text = text_of(&format!("<{paris}"));
    assert!(
        text.contains(" 50.2 ")
            && text.contains("at 2026-11-20T02:00:00Z: api.example: connection refused (768 ranges); retried on the next run"),
        "{text}"
    );
}
