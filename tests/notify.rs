//! Notices that reach every customer exactly once, through a real SMTP server (Postfix's
//! `smtp-sink`, started here on a loopback port) and the sendmail interface (a recording
//! stand-in, whose messages a real RFC 5322 parser reads back).

mod common;
use common::mta::{Postfix, SmtpSink, free_port};
use common::*;
use mail_parser::MimeHeaders;
use std::path::{Path, PathBuf};

const OPERATOR: &str = "postmaster@isp.example";

/// A message as a real parser reads it.
#[derive(Debug)]
struct Mail {
    to: String,
    subject: String,
    auto_submitted: Option<String>,
    message_id: Option<String>,
    text: String,
    /// Attachments: (file name, content).
    attachments: Vec<(String, String)>,
    raw: Vec<u8>,
}

fn read_messages(dir: &Path, prefix: &str) -> Vec<Mail> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let raw = std::fs::read(&p).unwrap();
            let m = mail_parser::MessageParser::default()
                .parse(&raw[..])
                .unwrap_or_else(|| panic!("{} is not an RFC 5322 message", p.display()));
            let to = m
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_string();
            Mail {
                to,
                subject: m.subject().unwrap_or_default().to_string(),
                auto_submitted: m.header_raw("Auto-Submitted").map(|v| v.trim().to_string()),
                message_id: m.message_id().map(String::from),
                text: m.body_text(0).map(|t| t.to_string()).unwrap_or_default(),
                attachments: m
                    .attachments()
                    .map(|a| {
                        (
                            a.attachment_name().unwrap_or_default().to_string(),
                            String::from_utf8_lossy(a.contents()).to_string(),
                        )
                    })
                    .collect(),
                raw,
            }
        })
        .collect()
}

/// The sample servers, copied so they can change, with bob's contact if `bob`, and a domain whose
/// account file is missing (so there is something not audited for the operator).
fn servers(w: &Workdir, bob: bool) {
    for (from, to) in [("servers/directadmin", "da"), ("servers/cpanel", "cp")] {
        copy_tree(&sample(from), &w.path(to));
    }
    add_missing_domain(&w.path("da"));
    if bob {
        w.write(
            "da/usr/local/directadmin/data/users/bob/user.conf",
            "username=bob\nemail=bob@shop.example\n",
        );
    }
}

/// An audit config with a [notify] section (`transport` lines appended).
fn config(w: &Workdir, transport: &str) -> PathBuf {
    w.write(
        "audit.toml",
        format!(
            "index = \"idx\"\nstate = \"state\"\nout = \"out\"\n\
             hibp = [{:?}]\ncombolist = [{:?}]\ndirectadmin = [\"da\"]\ncpanel = [\"cp\"]\n\n\
             [notify]\nfrom = \"Example Hosting Security <security@isp.example>\"\n\
             reply_to = \"support@isp.example\"\noperator = \"{OPERATOR}\"\n\
             retry_after = \"0s\"\n{transport}\n",
            s(&sample("hibp/pwned-passwords-sha1.txt")),
            s(&sample("combolists/customers.txt")),
        ),
    )
}

fn smtp_config(w: &Workdir, port: u16) -> PathBuf {
    config(
        w,
        &format!(
            "via = \"smtp\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nsmtp_tls = \"none\""
        ),
    )
}

fn run(w: &Workdir, args: &[&str]) -> Run {
    w.run(args)
}

fn customer_mail(msgs: &[Mail]) -> Vec<&Mail> {
    msgs.iter().filter(|m| m.to != OPERATOR).collect()
}

fn recipients(msgs: &[Mail]) -> Vec<String> {
    let mut v: Vec<String> = customer_mail(msgs).iter().map(|m| m.to.clone()).collect();
    v.sort();
    v
}

fn db(w: &Workdir) -> rusqlite::Connection {
    rusqlite::Connection::open(w.path("state/breach-audit.sqlite")).unwrap()
}

fn scalar(w: &Workdir, sql: &str) -> i64 {
    db(w).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Leaked passwords of the sample combolist: none may appear in any message.
fn leaked_passwords() -> Vec<String> {
    std::fs::read_to_string(sample("combolists/customers.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':').map(|(_, p)| p.to_string()))
        .filter(|p| p.len() >= 6)
        .collect()
}

const THREE: [&str; 3] = [
    "alice.owner@isp.example",
    "bob@shop.example",
    "carl@owner.example",
];

#[test]
fn three_contacts_are_told_once_each_through_a_real_smtp_server() {
    let w = Workdir::new();
    servers(&w, true);
    let sink = SmtpSink::start(free_port());
    let cfg = s(&smtp_config(&w, sink.port));
    let r = run(&w, &["audit", "--config", &cfg, "--notify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("notify: 3 notices sent"), "{}", r.stderr);
    let msgs = read_messages(sink.dir(), "msg-");
    assert_eq!(recipients(&msgs), THREE, "{msgs:?}");
    for m in customer_mail(&msgs) {
        assert!(m.subject.starts_with("Security notice: "), "{}", m.subject);
        assert_eq!(m.auto_submitted.as_deref(), Some("auto-generated"));
        assert!(
            m.message_id
                .as_deref()
                .is_some_and(|id| id.ends_with("@isp.example"))
        );
        assert!(m.text.contains("Change the password"), "{}", m.text);
        let raw = String::from_utf8_lossy(&m.raw);
        for p in leaked_passwords() {
            assert!(
                !raw.contains(&p),
                "a leaked password in the message to {}",
                m.to
            );
        }
    }
    let alice = customer_mail(&msgs)
        .into_iter()
        .find(|m| m.to == "alice.owner@isp.example")
        .unwrap();
    for a in [
        "ceo@example.com",
        "info@example.com",
        "sales@example.com",
        "uni@example.com",
    ] {
        assert!(alice.text.contains(a), "{a} missing from alice's notice");
    }
    assert!(
        !alice.text.contains("@blog.example"),
        "carl's addresses in alice's notice"
    );
    // The operator hears what customers must not: the unverifiable login, what was not audited.
    let op: Vec<&Mail> = msgs.iter().filter(|m| m.to == OPERATOR).collect();
    assert_eq!(op.len(), 1);
    assert!(
        op[0].text.contains("nologin@blog.example"),
        "{}",
        op[0].text
    );
    assert!(op[0].text.contains("missing.example"), "{}", op[0].text);
    // ...with tonight's numbers as text and the operator's page attached.
    assert!(op[0].text.contains("accounts audited: "), "{}", op[0].text);
    assert!(op[0].text.contains("INCOMPLETE"), "{}", op[0].text);
    assert_eq!(op[0].attachments.len(), 1, "{:?}", op[0].attachments);
    let (name, page) = &op[0].attachments[0];
    assert_eq!(name, "report.html");
    assert!(page.contains("<!DOCTYPE html>") && page.contains("id=\"tonight\""));
    assert!(page.contains("missing.example"));
    assert!(
        customer_mail(&msgs)
            .iter()
            .all(|m| m.attachments.is_empty())
    );
    // Told is recorded: every notice sent with its Message-ID, every owed finding told.
    assert_eq!(
        scalar(
            &w,
            "SELECT count(*) FROM notices WHERE status = 'sent' AND message_id LIKE '<breach-audit.%'"
        ),
        3
    );
    assert_eq!(
        scalar(
            &w,
            "SELECT count(*) FROM findings WHERE told_at IS NULL AND contact IS NOT NULL AND kind NOT LIKE 'unverifiable%'"
        ),
        0
    );
    // The run is recorded with its sources (the dump with its content fingerprint).
    let sources: String = db(&w)
        .query_row(
            "SELECT sources FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        sources.contains("pwned-passwords-sha1.txt") && sources.contains("\"fingerprint\":\""),
        "{sources}"
    );
    assert!(sources.contains("--directadmin"), "{sources}");
    // Night 2: nothing new, nobody told twice.
    let r = run(&w, &["audit", "--config", &cfg, "--notify"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(recipients(&read_messages(sink.dir(), "msg-")), THREE);
}

#[test]
fn a_transport_that_is_down_tells_nobody_and_the_next_run_delivers_exactly_once() {
    let w = Workdir::new();
    servers(&w, true);
    let port = free_port(); // nothing listens there yet
    let cfg = s(&smtp_config(&w, port));
    let r = run(&w, &["audit", "--config", &cfg, "--notify", "--quiet"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("notify: 0 notices sent, 3 failed"),
        "{}",
        r.stderr
    );
    assert_eq!(
        scalar(
            &w,
            "SELECT count(*) FROM notices WHERE status = 'failed' AND last_error IS NOT NULL"
        ),
        3
    );
    assert_eq!(
        scalar(
            &w,
            "SELECT count(*) FROM findings WHERE told_at IS NOT NULL"
        ),
        0
    );
    // `notify` alone, still down: exit 4, still owed.
    let r = run(&w, &["notify", "--config", &cfg]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(scalar(&w, "SELECT max(attempts) FROM notices"), 2);
    // The server is back: delivered, once each; a further run sends nothing more.
    let sink = SmtpSink::start(port);
    let r = run(&w, &["notify", "--config", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(recipients(&read_messages(sink.dir(), "msg-")), THREE);
    let r = run(&w, &["audit", "--config", &cfg, "--notify"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(recipients(&read_messages(sink.dir(), "msg-")), THREE);
}

#[test]
fn findings_without_a_contact_go_to_the_operator_until_one_appears() {
    let w = Workdir::new();
    servers(&w, false);
    let sink = SmtpSink::start(free_port());
    let cfg = s(&smtp_config(&w, sink.port));
    let r = run(&w, &["audit", "--config", &cfg, "--notify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let msgs = read_messages(sink.dir(), "msg-");
    assert_eq!(
        recipients(&msgs),
        ["alice.owner@isp.example", "carl@owner.example"]
    );
    let op: Vec<&Mail> = msgs.iter().filter(|m| m.to == OPERATOR).collect();
    assert!(
        op[0].text.contains("orders@shop.example (owner bob)"),
        "{}",
        op[0].text
    );
    assert!(
        op[0].text.contains("no contact address is known"),
        "{}",
        op[0].text
    );
    assert!(
        scalar(
            &w,
            "SELECT count(*) FROM findings WHERE address = 'orders@shop.example' AND told_at IS NULL"
        ) > 0
    );
    // bob's contact appears: his findings reach him, once.
    w.write(
        "da/usr/local/directadmin/data/users/bob/user.conf",
        "email=bob@shop.example\n",
    );
    let r = run(&w, &["audit", "--config", &cfg, "--notify"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let msgs = read_messages(sink.dir(), "msg-");
    assert_eq!(recipients(&msgs), THREE);
    let bob = customer_mail(&msgs)
        .into_iter()
        .find(|m| m.to == "bob@shop.example")
        .unwrap();
    assert!(bob.text.contains("orders@shop.example") && bob.text.contains("admin@shop.example"));
}

#[test]
fn a_dry_run_renders_everything_and_changes_nothing() {
    let w = Workdir::new();
    servers(&w, true);
    let sink = SmtpSink::start(free_port());
    let cfg = s(&smtp_config(&w, sink.port));
    let r = run(&w, &["audit", "--config", &cfg]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let snapshot = |w: &Workdir| -> String {
        let c = db(w);
        let mut q = c
            .prepare(
                "SELECT id || status || attempts || coalesce(sent_at, '') FROM notices ORDER BY id",
            )
            .unwrap();
        let n: Vec<String> = q
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|x| x.unwrap())
            .collect();
        let told: i64 = c
            .query_row(
                "SELECT count(*) FROM findings WHERE told_at IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        format!("{n:?} {told}")
    };
    let before = snapshot(&w);
    let r = run(&w, &["notify", "--config", &cfg, "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("would send: alice.owner@isp.example: 4 addresses"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("dry run: 3 would be sent"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("Change the password"),
        "content on stderr"
    );
    assert_eq!(snapshot(&w), before);
    assert!(read_messages(sink.dir(), "msg-").is_empty());
}

#[test]
fn sigkill_between_send_and_commit_repeats_at_most_the_message_in_flight() {
    let w = Workdir::new();
    servers(&w, true);
    // A sendmail that records each message and its arguments, and kills its caller (breach-audit)
    // right after accepting the second message: before its commit.
    let spool = w.path("spool");
    std::fs::create_dir(&spool).unwrap();
    let script = w.write(
        "sendmail",
        format!(
            "#!/bin/sh\nn=$(ls {d} | grep -c '^msg-')\ncat > {d}/msg-$n-$$\necho \"$@\" > {d}/args-$n\n\
             if [ \"$n\" -eq 1 ] && [ ! -e {d}/killed ]; then touch {d}/killed; kill -9 $PPID; fi\nexit 0\n",
            d = spool.display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = s(&config(
        &w,
        &format!("via = \"sendmail\"\nsendmail = {:?}", s(&script)),
    ));
    let r = run(&w, &["audit", "--config", &cfg]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let r = run(&w, &["notify", "--config", &cfg]);
    assert_eq!(r.code, -1, "killed by SIGKILL: {}", r.stderr);
    assert_eq!(customer_mail(&read_messages(&spool, "msg-")).len(), 2);
    // The next run delivers what is owed: the message in flight again, the rest once.
    let r = run(&w, &["notify", "--config", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let msgs = read_messages(&spool, "msg-");
    let mut to = recipients(&msgs);
    to.dedup();
    assert_eq!(to, THREE);
    assert_eq!(
        customer_mail(&msgs).len(),
        4,
        "exactly one duplicate: {:?}",
        recipients(&msgs)
    );
    // The sendmail interface: `-i -f FROM -- TO`, the message on standard input.
    let args = std::fs::read_to_string(spool.join("args-0")).unwrap();
    assert!(args.starts_with("-i -f security@isp.example -- "), "{args}");
    for m in customer_mail(&msgs) {
        assert_eq!(m.auto_submitted.as_deref(), Some("auto-generated"));
    }
}

#[test]
fn the_outbox_gets_one_eml_per_message_and_the_sample_config_works_as_shipped() {
    let w = Workdir::new();
    servers(&w, true);
    let cfg = s(&config(&w, "via = \"outbox\"\noutbox = \"outbox\""));
    let r = run(&w, &["audit", "--config", &cfg, "--notify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let msgs = read_messages(&w.path("outbox"), "breach-audit.");
    assert_eq!(recipients(&msgs), THREE);
    assert_eq!(msgs.len(), 4, "three customers and the operator");
    let mode = std::fs::metadata(w.path("outbox")).unwrap().permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.mode() & 0o777, 0o700);
    // notices.jsonl: one record per contact with the addresses' full records.
    let jsonl = std::fs::read_to_string(w.path("out/notices.jsonl")).unwrap();
    let alice = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["contact"] == "alice.owner@isp.example")
        .unwrap();
    assert_eq!(alice["owner"], "alice");
    assert_eq!(alice["records"].as_array().unwrap().len(), 4);
    assert!(alice["records"][0]["findings"].is_array());
}

#[test]
fn an_older_reported_tsv_is_imported_once_and_nothing_is_told_twice() {
    let w = Workdir::new();
    servers(&w, true);
    let cfg = s(&config(&w, "via = \"outbox\"\noutbox = \"outbox\""));
    // What an older breach-audit left: everything of alice's accounts reported.
    let mut tsv = String::new();
    for a in ["ceo", "info", "sales", "uni"] {
        for k in [
            "credentials_leaked",
            "current_password_leaked",
            "password_pwned",
        ] {
            tsv.push_str(&format!("{a}@example.com\t{k}\n"));
        }
    }
    w.write("state/reported.tsv", &tsv);
    let r = run(&w, &["audit", "--config", &cfg, "--notify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!w.path("state/reported.tsv").exists());
    assert!(w.path("state/reported.tsv.imported").exists());
    // alice was told by the older version: not again; the others now.
    let msgs = read_messages(&w.path("outbox"), "breach-audit.");
    assert_eq!(
        recipients(&msgs),
        ["bob@shop.example", "carl@owner.example"]
    );
    let new = std::fs::read_to_string(w.path("out/new.jsonl")).unwrap();
    assert!(
        !new.contains("@example.com\""),
        "imported findings are not new: {new}"
    );
}

#[test]
fn a_notice_that_keeps_failing_is_held_and_reported_to_the_operator() {
    let w = Workdir::new();
    servers(&w, true);
    let port = free_port();
    let cfg = s(&smtp_config(&w, port));
    let toml = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        toml.replace("retry_after", "max_attempts = 2\nretry_after"),
    )
    .unwrap();
    assert_eq!(run(&w, &["audit", "--config", &cfg, "--notify"]).code, 1);
    assert_eq!(run(&w, &["notify", "--config", &cfg]).code, 4);
    assert_eq!(
        scalar(&w, "SELECT count(*) FROM notices WHERE status = 'held'"),
        3
    );
    // Held notices are not retried; the operator hears of them once a transport works.
    let sink = SmtpSink::start(port);
    let r = run(&w, &["notify", "--config", &cfg]);
    assert_eq!(r.code, 0, "the operator was told: {}", r.stderr);
    let msgs = read_messages(sink.dir(), "msg-");
    assert!(customer_mail(&msgs).is_empty(), "{msgs:?}");
    let op: Vec<&Mail> = msgs.iter().filter(|m| m.to == OPERATOR).collect();
    assert_eq!(op.len(), 1);
    assert!(
        op[0]
            .text
            .contains("notice to carl@owner.example held after 2 attempts"),
        "{}",
        op[0].text
    );
}

#[test]
fn templates_in_template_dir_replace_the_default_and_add_an_html_part() {
    let w = Workdir::new();
    servers(&w, true);
    w.write(
        "tpl/subject.txt",
        "Passwörter von {{ owner }}: {{ addresses | length }}",
    );
    w.write(
        "tpl/body.html",
        "<p>{% for a in addresses %}<b>{{ a.email }}</b> {% endfor %}<i>{{ owner }}</i></p>",
    );
    let cfg = s(&config(
        &w,
        "via = \"outbox\"\noutbox = \"outbox\"\ntemplate_dir = \"tpl\"",
    ));
    assert_eq!(run(&w, &["audit", "--config", &cfg, "--notify"]).code, 1);
    let msgs = read_messages(&w.path("outbox"), "breach-audit.");
    let carl = customer_mail(&msgs)
        .into_iter()
        .find(|m| m.to == "carl@owner.example")
        .unwrap();
    // A UTF-8 subject survives the trip (RFC 2047 encoded on the wire, decoded by the parser).
    assert_eq!(carl.subject, "Passwörter von carl: 2");
    let raw = String::from_utf8_lossy(&carl.raw);
    assert!(raw.contains("Subject: =?utf-8?"), "not encoded: {raw}");
    let parsed = mail_parser::MessageParser::default()
        .parse(&carl.raw[..])
        .unwrap();
    let html = parsed.body_html(0).unwrap();
    assert!(html.contains("<b>editor@blog.example</b>"), "{html}");
    assert!(
        carl.text.contains("Change the password"),
        "the default text part stays"
    );
}

fn last_errors(w: &Workdir) -> Vec<String> {
    let c = db(w);
    let mut q = c
        .prepare("SELECT coalesce(last_error, '') FROM notices ORDER BY id")
        .unwrap();
    q.query_map([], |r| r.get(0))
        .unwrap()
        .map(|x| x.unwrap())
        .collect()
}

/// STARTTLS to a real Postfix that takes no mail in the clear (smtpd_tls_security_level =
/// encrypt), relaying to smtp-sink, over rustls: with only an unrelated CA trusted nothing is
/// sent and each stored error names the server and the fix; with its CA trusted (SSL_CERT_FILE,
/// as the system's roots) the three notices arrive.
#[test]
fn starttls_to_postfix_checks_its_certificate_and_delivers() {
    let w = Workdir::new();
    servers(&w, true);
    let sink = SmtpSink::start(free_port());
    let postfix = Postfix::start_tls(sink.port);
    let cfg = s(&config(
        &w,
        &format!(
            "via = \"smtp\"\nsmtp_host = \"localhost\"\nsmtp_port = {}\nsmtp_tls = \"starttls\"",
            postfix.port
        ),
    ));
    let r = w.run_trusting(
        &postfix.tls.other_ca,
        &["audit", "--config", &cfg, "--notify", "--quiet"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("notify: 0 notices sent, 3 failed"),
        "{}",
        r.stderr
    );
    for e in last_errors(&w) {
        assert!(
            e.contains(&format!("smtp localhost:{}", postfix.port))
                && e.contains("localhost's certificate is not signed by a CA this machine trusts")
                && e.contains("SSL_CERT_FILE"),
            "{e}"
        );
    }
    let r = w.run_trusting(&postfix.tls.ca, &["notify", "--config", &cfg]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, postfix.log());
    // Postfix relays from its queue: wait for the sink to have all three.
    let t = std::time::Instant::now();
    while recipients(&read_messages(sink.dir(), "msg-")).len() < THREE.len()
        && t.elapsed() < std::time::Duration::from_secs(60)
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        recipients(&read_messages(sink.dir(), "msg-")),
        THREE,
        "{}",
        postfix.log()
    );
    // Postfix logged the session as TLS (it takes nothing else on that port).
    assert!(
        postfix
            .log()
            .contains("TLS connection established from localhost"),
        "{}",
        postfix.log()
    );
}

#[test]
fn retry_now_delivers_failed_notices_before_their_retry_time_and_errors_name_the_server() {
    let w = Workdir::new();
    servers(&w, true);
    let port = free_port(); // nothing listens there yet
    let cfg = s(&smtp_config(&w, port));
    let toml = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        toml.replace("retry_after = \"0s\"", "retry_after = \"1h\""),
    )
    .unwrap();
    let r = run(&w, &["audit", "--config", &cfg, "--notify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // The error names the server it could not reach, and is stored as one trimmed line.
    let errors = last_errors(&w);
    assert_eq!(errors.len(), 3, "{errors:?}");
    for e in &errors {
        assert!(e.starts_with(&format!("smtp 127.0.0.1:{port}: ")), "{e:?}");
        assert_eq!(e.trim(), e, "stored untrimmed: {e:?}");
        assert!(!e.contains('\n'), "{e:?}");
    }
    assert!(
        r.stderr
            .contains(&format!("not delivered: smtp 127.0.0.1:{port}: ")),
        "{}",
        r.stderr
    );
    // The server is back, but the retry is an hour away: a plain notify sends nothing...
    let sink = SmtpSink::start(port);
    let r = run(&w, &["notify", "--config", &cfg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("0 notices sent, 0 failed (retried later), 0 held, 3 still pending"),
        "{}",
        r.stderr
    );
    assert!(customer_mail(&read_messages(sink.dir(), "msg-")).is_empty());
    // ...and --retry-now delivers every one of them at once, once.
    let r = run(&w, &["notify", "--config", &cfg, "--retry-now"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("3 notices sent"), "{}", r.stderr);
    assert_eq!(recipients(&read_messages(sink.dir(), "msg-")), THREE);
    assert_eq!(
        scalar(
            &w,
            "SELECT count(*) FROM notices WHERE status = 'sent' AND last_error IS NULL"
        ),
        3
    );
    let r = run(&w, &["notify", "--config", &cfg, "--retry-now"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(recipients(&read_messages(sink.dir(), "msg-")), THREE);
}

#[test]
fn a_failing_sendmail_is_named_with_its_path_and_its_stderr_stored_trimmed() {
    let w = Workdir::new();
    servers(&w, true);
    let script = w.write(
        "sendmail",
        "#!/bin/sh\ncat > /dev/null\necho 'sendmail: mail queue full' >&2\nexit 75\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = s(&config(
        &w,
        &format!("via = \"sendmail\"\nsendmail = {:?}", s(&script)),
    ));
    let r = run(&w, &["audit", "--config", &cfg, "--notify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let errors = last_errors(&w);
    assert_eq!(errors.len(), 3, "{errors:?}");
    for e in &errors {
        assert!(
            e.starts_with(&format!("sendmail {}: ", s(&script))),
            "{e:?}"
        );
        assert!(e.ends_with("mail queue full"), "{e:?}");
    }
    // A sendmail that is not there: the path it tried.
    let cfg = s(&config(
        &w,
        "via = \"sendmail\"\nsendmail = \"/nonexistent/sendmail\"",
    ));
    let r = run(&w, &["notify", "--config", &cfg, "--retry-now"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    for e in last_errors(&w) {
        assert!(e.starts_with("sendmail /nonexistent/sendmail: "), "{e:?}");
    }
}

#[test]
fn a_locked_account_is_not_told_anyone_can_log_in_and_no_line_breaks_mid_sentence() {
    let w = Workdir::new();
    servers(&w, true);
    let cfg = s(&config(&w, "via = \"outbox\"\noutbox = \"outbox\""));
    assert_eq!(run(&w, &["audit", "--config", &cfg, "--notify"]).code, 1);
    let msgs = read_messages(&w.path("outbox"), "breach-audit.");
    let carl = customer_mail(&msgs)
        .into_iter()
        .find(|m| m.to == "carl@owner.example")
        .unwrap();
    let text = carl.text.replace("\r\n", "\n");
    // editor@blog.example is locked in the sample (cPanel shadow `!`), writer@ is not.
    let (editor, writer) = text
        .split_once("* writer@blog.example")
        .expect("writer's block");
    let editor = editor
        .split_once("* editor@blog.example (login currently locked)")
        .unwrap_or_else(|| panic!("editor's block, marked locked: {text}"))
        .1;
    assert!(
        editor.contains("current password is in a public list"),
        "{editor}"
    );
    assert!(!editor.contains("anyone can log in with it"), "{editor}");
    assert!(editor.contains("once it is unlocked"), "{editor}");
    assert!(writer.contains("anyone can log in with it."), "{writer}");
    // Lines end where sentences (or the greeting, a list's lead-in, an address) end.
    for line in text.lines() {
        let l = line.trim_end();
        assert!(
            l.is_empty()
                || [".", ":", ",", ")"].iter().any(|e| l.ends_with(e))
                || l.starts_with("* "),
            "a line broken mid-sentence: {line:?}\n{text}"
        );
    }
}

#[test]
fn audit_help_names_every_notify_key() {
    let w = Workdir::new();
    let r = run(&w, &["audit", "--help"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let help = r.out();
    assert!(help.contains("[notify]"), "{help}");
    for key in [
        "from",
        "reply_to",
        "operator",
        "via",
        "sendmail",
        "smtp_host",
        "smtp_port",
        "smtp_tls",
        "smtp_credentials",
        "outbox",
        "max_attempts",
        "retry_after",
        "template_dir",
    ] {
        assert!(
            help.contains(key),
            "audit --help does not name [notify] {key}"
        );
    }
}

#[test]
fn an_outbox_that_cannot_take_files_is_named_in_the_error() {
    let w = Workdir::new();
    servers(&w, true);
    let Some(_ro) = unwritable_dir(&w.path("outbox")) else {
        eprintln!("skipped: cannot make a directory unwritable here");
        return;
    };
    let cfg = s(&config(&w, "via = \"outbox\"\noutbox = \"outbox\""));
    let r = run(&w, &["audit", "--config", &cfg, "--notify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let errors = last_errors(&w);
    assert_eq!(errors.len(), 3, "{errors:?}");
    for e in &errors {
        assert!(
            e.starts_with(&format!("outbox {}: ", s(&w.path("outbox")))),
            "{e:?}"
        );
    }
}
