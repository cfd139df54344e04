//! The process's own start (`src/main.rs` is a C `main`; `build.rs` links GCC's unwinder
//! statically): what std's start did and the tool relies on still happens, and the binary loads
//! nothing but libc and libm.

mod common;
use common::Workdir;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

#[test]
fn the_binary_loads_only_libc_and_libm() {
    let bin = env!("CARGO_BIN_EXE_breach-audit");
    // ldd is Debian's libc-bin (scripts/test.sh installs it): without it this fails, never passes.
    let out = Command::new("ldd").arg(bin).output().expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("libc.so"),
        "ldd {bin}: {text}"
    );
    let libs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|l| !l.starts_with("linux-vdso") && !l.contains("ld-linux"))
        .collect();
    assert_eq!(
        libs,
        ["libm.so.6", "libc.so.6"],
        "{bin} loads more than libc and libm (libgcc_s: build.rs did not find libgcc_eh.a; \
         libz/libssl: a crate's C backend came back): {text}"
    );
}

/// A reader that closes the pipe early: the writer gets EPIPE, ends cleanly (exit 0, no message),
/// and is not killed by SIGPIPE (std's start ignored it; the C `main` must too).
#[test]
fn a_closed_output_pipe_ends_the_run_cleanly() {
    let w = Workdir::new();
    w.write("dump.txt", common::random_dump(1000, 7).join("\n") + "\n");
    w.build("idx", &[&w.path("dump.txt")]);
    let mut child = w
        .cmd()
        .args(["lookup", "--index", "idx"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 2];
    let mut stdin = child.stdin.take().unwrap();
    // Enough answers to fill the pipe after the reader has gone.
    let feeder = std::thread::spawn(move || {
        for _ in 0..200_000 {
            if stdin.write_all(b"password\n").is_err() {
                break;
            }
        }
    });
    stdout.read_exact(&mut first).expect("a first answer");
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    feeder.join().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        None,
        "killed by a signal: {:?}",
        out.status
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Started with standard output closed (as some daemon managers and careless cron lines do), the
/// descriptor is reopened on /dev/null at start, as std's start did: otherwise the first file the
/// run opens would become "standard output" and receive what it prints.
#[test]
fn a_closed_standard_output_is_reopened_on_dev_null() {
    let w = Workdir::new();
    w.write("dump.txt", common::random_dump(1000, 8).join("\n") + "\n");
    w.build("idx", &[&w.path("dump.txt")]);
    let mut cmd = w.cmd();
    cmd.args(["lookup", "--index", "idx"]).stdin(Stdio::piped());
    // SAFETY: close(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn");
    // The lookup has opened its index and waits on standard input: look at its descriptor 1.
    let fd1 = format!("/proc/{}/fd/1", child.id());
    let mut seen = None;
    for _ in 0..500 {
        let waiting = std::fs::read_to_string(format!("/proc/{}/wchan", child.id()))
            .is_ok_and(|w| w.contains("pipe"));
        if waiting {
            seen = Some(std::fs::read_link(&fd1).map(|p| p.display().to_string()));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(child.stdin.take());
    let status = child.wait().expect("wait");
    let seen = seen.expect("the lookup never waited on its input");
    assert_eq!(seen.as_deref().ok(), Some("/dev/null"), "fd 1: {seen:?}");
    assert_eq!(status.code(), Some(0));
}

/// Output left in std's buffer at the end is written (std's start flushed it at exit).
#[test]
fn output_is_complete_when_the_process_ends() {
    let w = Workdir::new();
    w.write("dump.txt", common::random_dump(1000, 9).join("\n") + "\n");
    w.build("idx", &[&w.path("dump.txt")]);
    let input = "password\n".repeat(5000);
    let r = w.run_stdin(&["lookup", "--index", "idx"], input.as_bytes());
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    assert_eq!(r.out().lines().count(), 5000);
}
