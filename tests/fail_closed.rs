//! Fail closed on account input (issue 11): reading nothing is an error, not "nothing at risk"; a
//! missing file never loses or repeats a finding; a customer's files cannot hang or redirect the
//! job; killed runs leave nothing behind. Each test is named after what it caught.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Run a command, killing it if it has not finished within `limit` (then the test fails).
fn run_within(mut cmd: std::process::Command, limit: Duration) -> Run {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap().into(),
        Err(_) => {
            signal(pid, rustix::process::Signal::KILL);
            panic!("still running after {limit:?}: it hangs");
        }
    }
}

#[test]
fn a_directadmin_passwd_given_to_passwd_file_is_an_error_naming_the_fix() {
    let w = Workdir::new();
    index_sample(&w);
    let da = sample("servers/directadmin/etc/virtual/example.com/passwd");
    let r = w.run(&["check", "--index", "idx", "--passwd-file", &s(&da)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("--passwd-file"), "{}", r.stderr);
    assert!(r.stderr.contains("all 5 rows rejected"), "{}", r.stderr);
    assert!(
        r.stderr.contains("use --directadmin ROOT") || r.stderr.contains("--directadmin ROOT"),
        "{}",
        r.stderr
    );
    // A cPanel shadow file, likewise.
    let shadow = sample("servers/cpanel/home/carl/etc/blog.example/shadow");
    let r = w.run(&["check", "--index", "idx", "--passwd-file", &s(&shadow)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--cpanel ROOT"), "{}", r.stderr);
}

#[test]
fn empty_and_binary_account_files_are_errors_even_under_audit_quiet() {
    let w = Workdir::new();
    index_sample(&w);
    let empty = w.write("empty", "");
    let mut junk = Vec::new();
    let mut rng = Rng(7);
    for _ in 0..4096 {
        junk.extend_from_slice(&rng.next().to_le_bytes());
    }
    junk.extend_from_slice(b"\0\0\0\n\x7fELF");
    let binary = w.write("binary", &junk);
    for (f, flag) in [
        (&empty, "--passwd-file"),
        (&binary, "--passwd-file"),
        (&empty, "--accounts-csv"),
    ] {
        let r = w.run(&["check", "--index", "idx", flag, &s(f)]);
        assert_eq!(r.code, 2, "{flag} {}: {}", f.display(), r.stderr);
        assert!(r.stderr.contains(&s(f)), "{}", r.stderr);
        assert!(
            r.stderr.contains("no account read") || r.stderr.contains("CSV header"),
            "{}",
            r.stderr
        );
    }
    // What the cron wrapper runs: exit 2 and the reason printed, --quiet or not.
    let r = sample_audit(&w, &["--passwd-file", &s(&empty), "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no account read"), "{}", r.stderr);
    assert!(
        !w.path("out/at-risk.jsonl").exists(),
        "no verdict may be written"
    );
}

#[test]
fn a_csv_with_semicolons_or_tabs_is_read_and_a_mostly_rejected_one_is_an_error() {
    let w = Workdir::new();
    index_sample(&w);
    let comma = std::fs::read_to_string(sample("accounts/export.csv")).unwrap();
    let base = w.run(&[
        "check",
        "--index",
        "idx",
        "--accounts-csv",
        &s(&sample("accounts/export.csv")),
    ]);
    assert_eq!(base.code, 1, "{}", base.stderr);
    for (name, sep) in [("semi.csv", ";"), ("tab.csv", "\t")] {
        // Header `Email;Hash` as a spreadsheet in a European locale writes it.
        let text: String = comma
            .lines()
            .enumerate()
            .map(|(i, l)| {
                let l = if i == 0 {
                    "Email,Hash".to_string()
                } else {
                    l.to_string()
                };
                format!("{}\r\n", l.replace(',', sep))
            })
            .collect();
        let p = w.write(name, text);
        let r = w.run(&["check", "--index", "idx", "--accounts-csv", &s(&p)]);
        assert_eq!(r.code, 1, "{name}: {}", r.stderr);
        assert_eq!(r.out(), base.out(), "{name}");
    }
    // Two accounts and three rows of junk: mostly rejected, an error; --max-rejected 80% allows it.
    let mut lines = comma.lines();
    let junky = format!(
        "{}\n{}\n{}\nnot an address,x\nanother,y\n<html>,z\n",
        lines.next().unwrap(),
        lines.next().unwrap(),
        lines.next().unwrap()
    );
    let p = w.write("junky.csv", junky);
    let r = w.run(&["check", "--index", "idx", "--accounts-csv", &s(&p)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("3 of 5 rows rejected (60%"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--max-rejected"), "{}", r.stderr);
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--accounts-csv",
        &s(&p),
        "--max-rejected",
        "80%",
    ]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    assert!(r.stderr.contains("rejected 3 rows"), "{}", r.stderr);
}

#[test]
fn a_domain_no_source_holds_is_an_error_listing_it() {
    let w = Workdir::new();
    index_sample(&w);
    let da = s(&sample("servers/directadmin"));
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--directadmin",
        &da,
        "--domain",
        "exmaple.com",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("exmaple.com"), "{}", r.stderr);
    assert!(r.stderr.contains("no account source holds"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    // One good and one unknown domain: still an error, naming only the unknown one.
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--directadmin",
        &da,
        "--domain",
        "example.com",
        "--domain",
        "nowhere.example",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("holds nowhere.example ("), "{}", r.stderr);
    // A domains file with inline comments works.
    let f = w.write(
        "domains.txt",
        "example.com   # alice's shop\n# a comment\nshop.example#bob\n",
    );
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--directadmin",
        &da,
        "--domains-file",
        &s(&f),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let got = emails(&r.out());
    assert!(
        got.iter()
            .all(|e| e.ends_with("@example.com") || e.ends_with("@shop.example")),
        "{got:?}"
    );
    assert!(got.iter().any(|e| e.ends_with("@shop.example")), "{got:?}");
}

/// `audit` of the sample dump and combolist, with these account sources and flags.
fn sample_audit(w: &Workdir, extra: &[&str]) -> Run {
    let sha1 = s(&sample("hibp/pwned-passwords-sha1.txt"));
    let combo = s(&sample("combolists/customers.txt"));
    let mut a = AUDIT.to_vec();
    a.extend(["--hibp", &sha1, "--combolist", &combo]);
    a.extend_from_slice(extra);
    w.run(&a)
}

fn audit_args(w: &Workdir, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = AUDIT.iter().map(|s| s.to_string()).collect();
    a.extend(
        [
            "--hibp",
            &s(&sample("hibp/pwned-passwords-sha1.txt")),
            "--combolist",
            &s(&sample("combolists/customers.txt")),
            "--directadmin",
            &s(&w.path("da")),
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn audit(w: &Workdir) -> Run {
    let a = audit_args(w, &[]);
    w.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

fn reported(w: &Workdir) -> Vec<String> {
    // The findings on record in the state database, as `address<TAB>kind`.
    let db = rusqlite::Connection::open(w.path("state/breach-audit.sqlite")).unwrap();
    let mut q = db
        .prepare(
            "SELECT address || char(9) || kind FROM findings WHERE resolved_at IS NULL ORDER BY 1",
        )
        .unwrap();
    q.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<String>, _>>()
        .unwrap()
}

#[test]
fn a_missing_or_emptied_passwd_file_neither_loses_nor_repeats_findings() {
    let w = Workdir::new();
    copy_tree(&sample("servers/directadmin"), &w.path("da"));
    let passwd = w.path("da/etc/virtual/example.com/passwd");
    let original = std::fs::read(&passwd).unwrap();
    // Night 1: alice's accounts are reported.
    let r = audit(&w);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let night1 = reported(&w);
    let alice: Vec<&String> = night1
        .iter()
        .filter(|k| k.contains("@example.com\t"))
        .collect();
    assert!(alice.len() >= 4, "{night1:?}");
    // Night 2: the file is moved away (an rsync half done). Nothing new, nothing forgotten, and
    // the reason is printed although --quiet.
    std::fs::rename(&passwd, w.path("passwd.away")).unwrap();
    let r = audit(&w);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("example.com/passwd"), "{}", r.stderr);
    assert!(
        r.stderr.contains("accounts of example.com not audited"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("not audited tonight"), "{}", r.stderr);
    assert_eq!(
        reported(&w),
        night1,
        "findings of accounts not audited must be kept"
    );
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.path("out/run.json")).unwrap()).unwrap();
    assert_eq!(run["complete"], false);
    assert!(run["held_addresses"].as_u64().unwrap() >= 4, "{run}");
    let domains: Vec<&str> = run["not_audited"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    assert!(domains.contains(&"example.com"), "{run}");
    // Night 3: the file is back. Nothing is sent again.
    std::fs::write(&passwd, &original).unwrap();
    let r = audit(&w);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(w.path("out/new.jsonl")).unwrap(),
        ""
    );
    assert_eq!(reported(&w), night1);
    // Night 4: the file is emptied. Same: kept, warned, not resolved.
    std::fs::write(&passwd, "").unwrap();
    let r = audit(&w);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("not audited tonight"), "{}", r.stderr);
    assert_eq!(reported(&w), night1);
    // Night 5: back again; still nothing new.
    std::fs::write(&passwd, &original).unwrap();
    let r = audit(&w);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(w.path("out/new.jsonl")).unwrap(),
        ""
    );
    // A domain with no owner: judged, but neither new nor resolved until it has one.
    let owners = w.path("da/etc/virtual/domainowners");
    let text = std::fs::read_to_string(&owners).unwrap();
    std::fs::write(&owners, text.replace("example.com: alice\n", "")).unwrap();
    std::fs::remove_dir_all(w.path("state")).unwrap();
    let r = audit(&w);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no owner for example.com"),
        "{}",
        r.stderr
    );
    let new = std::fs::read_to_string(w.path("out/new.jsonl")).unwrap();
    assert!(!new.contains("@example.com\""), "{new}");
    assert!(
        std::fs::read_to_string(w.path("out/at-risk.jsonl"))
            .unwrap()
            .contains("@example.com\"")
    );
    std::fs::write(&owners, text).unwrap();
    let r = audit(&w);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let new = std::fs::read_to_string(w.path("out/new.jsonl")).unwrap();
    assert!(
        emails(&new).iter().all(|e| e.ends_with("@example.com")),
        "{new}"
    );
    assert_eq!(reported(&w), night1);
}

#[test]
fn the_cron_wrapper_shows_what_was_not_audited_and_exits_non_zero() {
    let w = Workdir::new();
    directadmin_with_missing_domain(&w.path("da"));
    let cfg = |tree: &str| {
        format!(
            "index = \"idx\"\nstate = \"state\"\nout = \"out\"\nhibp = [{:?}]\ncombolist = [{:?}]\n{tree}\n",
            s(&sample("hibp/pwned-passwords-sha1.txt")),
            s(&sample("combolists/customers.txt")),
        )
    };
    // The config's paths are relative to its own directory, not the current one.
    w.write("etc/incomplete.toml", cfg("directadmin = [\"../da\"]"));
    let wrapper = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/breach-audit-cron.sh");
    let r: Run = std::process::Command::new("sh")
        .arg(&wrapper)
        .arg(w.path("etc/incomplete.toml"))
        .env("BREACH_AUDIT", env!("CARGO_BIN_EXE_breach-audit"))
        .env("NOTIFY", format!("touch {}", s(&w.path("notified"))))
        .current_dir("/")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr.contains("accounts of missing.example not audited"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("incomplete"), "{}", r.stderr);
    assert!(
        w.path("notified").exists(),
        "new findings are still handed to the mailer"
    );
    assert!(
        w.path("etc/idx/manifest.json").exists(),
        "index relative to the config file"
    );
    // A complete audit: silent, exit 0.
    std::fs::remove_dir_all(w.path("da/etc/virtual/missing.example")).unwrap();
    let owners = w.path("da/etc/virtual/domainowners");
    let text = std::fs::read_to_string(&owners).unwrap();
    std::fs::write(&owners, text.replace("missing.example: bob\n", "")).unwrap();
    std::fs::write(
        w.path("da/usr/local/directadmin/data/users/alice/user.conf"),
        std::fs::read(sample(
            "servers/directadmin/usr/local/directadmin/data/users/alice/user.conf",
        ))
        .unwrap(),
    )
    .unwrap();
    let bob = w.path("da/usr/local/directadmin/data/users/bob");
    std::fs::create_dir_all(&bob).unwrap();
    std::fs::write(bob.join("user.conf"), "email=bob@shop.example\n").unwrap();
    let r: Run = std::process::Command::new("sh")
        .arg(&wrapper)
        .arg(w.path("etc/incomplete.toml"))
        .env("BREACH_AUDIT", env!("CARGO_BIN_EXE_breach-audit"))
        .current_dir("/")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    assert!(r.stdout.is_empty());
}

/// Make `dir` (and everything in it) belong to a customer: another uid when we are root, else
/// world-writable (a directory someone else can change, all the same to the policy).
fn hand_to_customer(dir: &Path) {
    if is_root() {
        let st = std::process::Command::new("chown")
            .args(["-R", "54321:54321"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success());
    } else {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
}

#[test]
fn a_customers_fifo_symlinks_and_huge_files_cannot_hang_or_redirect_the_check() {
    let w = Workdir::new();
    index_sample(&w);
    copy_tree(&sample("servers/cpanel"), &w.path("cp"));
    let base = w.run(&["check", "--index", "idx", "--cpanel", &s(&w.path("cp"))]);
    assert_eq!(base.code, 1, "{}", base.stderr);
    let etc = w.path("cp/home/carl/etc");
    // Someone else's accounts, outside the tree: the symlink must not make them carl's.
    let victim = std::fs::read_to_string(etc.join("blog.example/shadow")).unwrap();
    let victim = victim.replace("writer:", "victim:");
    w.write("elsewhere/shadow", &victim);
    for d in [
        "fifo.example",
        "link.example",
        "zero.example",
        "sparse.example",
        "linkdir.example",
    ] {
        std::fs::create_dir_all(etc.join(d)).unwrap();
    }
    let st = std::process::Command::new("mkfifo")
        .arg(etc.join("fifo.example/shadow"))
        .status()
        .unwrap();
    assert!(st.success());
    std::os::unix::fs::symlink(w.path("elsewhere/shadow"), etc.join("link.example/shadow"))
        .unwrap();
    std::os::unix::fs::symlink("/dev/zero", etc.join("zero.example/shadow")).unwrap();
    std::fs::File::create(etc.join("sparse.example/shadow"))
        .unwrap()
        .set_len(10 << 30)
        .unwrap();
    std::fs::remove_dir(etc.join("linkdir.example")).unwrap();
    std::os::unix::fs::symlink(w.path("elsewhere"), etc.join("linkdir.example")).unwrap();
    hand_to_customer(&w.path("cp/home/carl"));
    for d in [
        "fifo.example",
        "link.example",
        "zero.example",
        "sparse.example",
    ] {
        if !is_root() {
            std::fs::set_permissions(etc.join(d), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
    }
    if !is_root() {
        std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let mut cmd = w.cmd();
    cmd.args(["check", "--index", "idx", "--cpanel", &s(&w.path("cp"))]);
    let r = run_within(cmd, Duration::from_secs(60));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.out(), base.out(), "only carl's real accounts are audited");
    assert!(!r.out().contains("victim"), "{}", r.out());
    for (d, why) in [
        ("fifo.example/shadow", "FIFO"),
        ("link.example/shadow", "symbolic link"),
        ("zero.example/shadow", "symbolic link"),
        ("sparse.example/shadow", "limit"),
        ("linkdir.example", "symbolic link"),
    ] {
        let line = r
            .stderr
            .lines()
            .find(|l| l.contains(d))
            .unwrap_or_else(|| panic!("{d} not named: {}", r.stderr));
        assert!(line.contains(why), "{d}: {line}");
        assert!(line.contains("not audited"), "{d}: {line}");
    }
    // The same refusals under --quiet (they change the verdict), and a smaller cap is honoured.
    let mut cmd = w.cmd();
    cmd.args([
        "check",
        "--index",
        "idx",
        "--cpanel",
        &s(&w.path("cp")),
        "--quiet",
        "--max-file-size",
        "100",
    ]);
    let r = run_within(cmd, Duration::from_secs(60));
    assert!(r.stderr.contains("fifo.example/shadow"), "{}", r.stderr);
    assert_eq!(
        r.code, 2,
        "every real file is over 100 bytes: nothing read: {}",
        r.stderr
    );
}

#[test]
fn root_owned_pointer_links_of_directadmin_keep_working() {
    let w = Workdir::new();
    index_sample(&w);
    copy_tree(&sample("servers/directadmin"), &w.path("da"));
    let base = w.run(&[
        "check",
        "--index",
        "idx",
        "--directadmin",
        &s(&w.path("da")),
    ]);
    assert_eq!(base.code, 1, "{}", base.stderr);
    assert!(
        base.stderr.contains("checked 7 accounts"),
        "{}",
        base.stderr
    );
    // The passwd file as a link (to a copy elsewhere in the tree), and a domain pointer.
    let virt = w.path("da/etc/virtual");
    std::fs::rename(
        virt.join("example.com/passwd"),
        virt.join("example.com/passwd.real"),
    )
    .unwrap();
    std::os::unix::fs::symlink("passwd.real", virt.join("example.com/passwd")).unwrap();
    std::os::unix::fs::symlink("example.com", virt.join("alias.example")).unwrap();
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--directadmin",
        &s(&w.path("da")),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("checked 12 accounts"), "{}", r.stderr);
    for e in emails(&base.out()) {
        assert!(r.out().contains(&format!("\"{e}\"")), "{e} lost");
    }
}

#[test]
fn sigterm_ends_a_run_within_seconds_whatever_it_is_blocked_on() {
    let w = Workdir::new();
    index_sample(&w);
    // `lookup` blocked reading a pipe nobody writes to.
    let mut child = w
        .cmd()
        .args(["lookup", "--index", "idx"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    signal(child.id(), rustix::process::Signal::TERM);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(130));
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_sort_directory_left_by_a_killed_build_is_removed_by_the_next_build() {
    let w = Workdir::new();
    let mut combo = String::new();
    for i in 0..300_000 {
        combo.push_str(&format!("user{i}@example.org:pw{i}\n"));
    }
    w.write("combo.txt", &combo);
    std::fs::create_dir(w.path("tmp")).unwrap();
    let args = [
        "build",
        "--index",
        "idx",
        "--combolist",
        "combo.txt",
        "--mem",
        "2M",
        "--tmp-dir",
        "tmp",
    ];
    let mut child = w.cmd().args(args).stderr(Stdio::null()).spawn().unwrap();
    let sort_dirs = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(w.path("tmp"))
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".breach-audit-sort-")
            })
            .map(|e| e.path())
            .collect()
    };
    let t = Instant::now();
    while sort_dirs().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no sort directory appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the build ended before it spilled"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    let left = sort_dirs();
    assert_eq!(left.len(), 1);
    let mode = std::fs::metadata(&left[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "sort directories are private");
    // One of an older version (no pid in its name), untouched for two days.
    let old = w.path("tmp/.breach-audit-sort-Ab3xYz");
    std::fs::create_dir(&old).unwrap();
    let two_days = std::time::SystemTime::now() - Duration::from_secs(2 * 86400);
    std::fs::File::open(&old)
        .unwrap()
        .set_modified(two_days)
        .unwrap();
    let r = w.run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(sort_dirs().is_empty(), "left behind: {:?}", sort_dirs());
    assert!(
        r.stderr.contains("left by a build that did not finish"),
        "{}",
        r.stderr
    );
    assert!(w.hidden_entries().is_empty(), "{:?}", w.hidden_entries());
}

// ---- The smaller rough edges of the same trial.

#[test]
fn output_dash_is_stdout_and_a_missing_output_directory_fails_before_any_work() {
    let w = Workdir::new();
    index_sample(&w);
    let csv = s(&sample("accounts/export.csv"));
    let to_stdout = w.run(&[
        "check",
        "--index",
        "idx",
        "--accounts-csv",
        &csv,
        "--output",
        "-",
    ]);
    assert_eq!(to_stdout.code, 1, "{}", to_stdout.stderr);
    assert!(to_stdout.out().contains("\"email\""), "{}", to_stdout.out());
    assert!(!w.path("-").exists(), "`-` is not a file name");
    // The output's directory is checked before the index is even opened.
    let r = w.run(&[
        "check",
        "--index",
        "no-such-index",
        "--accounts-csv",
        &csv,
        "--output",
        "nodir/at-risk.jsonl",
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--output nodir/at-risk.jsonl"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(!r.stderr.contains("no-such-index"), "{}", r.stderr);
    let r = w.run(&[
        "domain",
        "--index",
        "idx",
        "example.com",
        "--output",
        "nodir/x",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
}

#[test]
fn mem_below_the_floor_is_an_error() {
    let w = Workdir::new();
    let r = w.run(&[
        "build",
        "--index",
        "idx",
        "--hibp",
        &s(&sample("hibp/pwned-passwords-sha1.txt")),
        "--mem",
        "512",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("did you mean 512M"), "{}", r.stderr);
    assert!(!w.path("idx").exists());
}

#[test]
fn errors_name_the_argument_that_was_wrong() {
    let w = Workdir::new();
    index_sample(&w);
    let r = w.run(&["domain", "--index", "idx", "info@example.com"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("DOMAIN argument"), "{}", r.stderr);
    assert!(!r.stderr.contains("--domain"), "{}", r.stderr);
    assert!(
        r.stderr.contains("give its domain, example.com"),
        "{}",
        r.stderr
    );
    let r = w.run(&[
        "check",
        "--index",
        "idx",
        "--passwd-file",
        &s(&sample("accounts/dovecot-users")),
        "--domain",
        "a b",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--domain: \"a b\""), "{}", r.stderr);
}

#[test]
fn info_prints_rfc3339_times_and_summaries_say_1_account() {
    let w = Workdir::new();
    index_sample(&w);
    let r = w.run(&["info", "--index", "idx"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = r
        .out()
        .lines()
        .find(|l| l.starts_with("format"))
        .unwrap()
        .to_string();
    let at = line
        .split("built at ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')');
    // e.g. 2026-11-23T08:40:12Z
    assert_eq!(at.len(), 20, "{line}");
    assert!(
        at.as_bytes()[10] == b'T' && at.ends_with('Z') && at.starts_with("20"),
        "{line}"
    );
    let one = w.write("one", "alice@example.com:{PLAIN}letmein\n");
    let r = w.run(&["check", "--index", "idx", "--passwd-file", &s(&one)]);
    assert!(r.stderr.contains("checked 1 account in"), "{}", r.stderr);
    assert!(r.stderr.contains(" 0 rows"), "{}", r.stderr);
}

#[test]
fn an_index_that_cannot_judge_salted_hashes_is_said_even_quiet() {
    let w = Workdir::new();
    w.build("idx", &[&sample("hibp/pwned-passwords-sha1.txt")]);
    let da = s(&sample("servers/directadmin"));
    let r = w.run(&["check", "--index", "idx", "--directadmin", &da, "--quiet"]);
    assert!(
        r.stderr.contains("no password could be judged"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--combolist"), "{}", r.stderr);
    // With a combolist the salted hashes are tested against the leaked passwords: no warning.
    index_sample(&w);
    let r = w.run(&["check", "--index", "idx", "--directadmin", &da]);
    assert!(
        !r.stderr.contains("no password could be judged"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("salted"), "{}", r.stderr);
    // The audit's summary line has the salted count too.
    let r = sample_audit(&w, &["--directadmin", &da]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let summary = r
        .stderr
        .lines()
        .find(|l| l.starts_with("breach-audit: audit:"))
        .unwrap();
    assert!(summary.contains("7 salted (not comparable)"), "{summary}");
}

/// Issue 36: `serve --socket /etc/breach-audit/audit.toml` deleted the config. Only a socket is
/// ever replaced; a regular file, a symlink (even one to a socket) and a directory are refused,
/// named, and left exactly as they were.
#[test]
fn serve_refuses_a_socket_path_that_is_not_a_socket_and_leaves_it() {
    let w = Workdir::new();
    w.build("idx", &[&sample("hibp/pwned-passwords-sha1.txt")]);
    std::fs::create_dir_all(w.path("state")).unwrap();
    let config = w.write("audit.toml", "index = \"idx\"\n# the operator's config\n");
    let target = w.write("target.txt", "kept\n");
    std::os::unix::fs::symlink(&target, w.path("link.sock")).unwrap();
    std::fs::create_dir(w.path("dir.sock")).unwrap();
    for (path, what) in [
        (config.clone(), "a regular file"),
        (w.path("link.sock"), "a symbolic link"),
        (w.path("dir.sock"), "a directory"),
    ] {
        let r = w.run(&[
            "serve",
            "--index",
            "idx",
            "--state",
            "state",
            "--socket",
            &s(&path),
        ]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.stderr.contains(&s(&path))
                && r.stderr.contains(what)
                && r.stderr.contains("not a socket"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "index = \"idx\"\n# the operator's config\n"
    );
    assert!(
        std::fs::symlink_metadata(w.path("link.sock"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept\n");
    assert!(w.path("dir.sock").is_dir());
}

/// Issue 36: on a fleet server `report --state DIR` said the directory held no state; it holds
/// the server's lock and verification cache, and the state is in the shared database.
#[test]
fn a_fleet_servers_local_state_directory_points_to_its_config() {
    let w = Workdir::new();
    std::fs::create_dir_all(w.path("state")).unwrap();
    w.write("state/lock", "");
    for args in [
        &["report", "--state", "state", "--out", "-"][..],
        &["notify", "--state", "state"][..],
    ] {
        let r = w.run(args);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.stderr.contains("shared PostgreSQL database") && r.stderr.contains("--config"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // An empty directory is still told to run an audit first.
    std::fs::create_dir_all(w.path("empty")).unwrap();
    let r = w.run(&["report", "--state", "empty", "--out", "-"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("holds no breach-audit state:"),
        "{}",
        r.stderr
    );
}
