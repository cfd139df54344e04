//! Links GCC's unwinder (`libgcc_eh.a`) into the binary instead of loading `libgcc_s.so.1` at
//! every start. Rust's standard library asks for `-lgcc_s` on Linux/glibc, and loading that
//! library costs each process its mapping, relocations and a constructor that runs CPUID a dozen
//! times (each one a VM exit, ~5 µs, on the virtual machines mail servers run on): ~0.1-0.15 ms of
//! a one-hash `lookup` that lives ~1.5 ms (issue 39, "Start-up"; BENCHMARKS.md). No crate does
//! this; the usual way is the one here: a directory searched before the system's, holding the
//! static unwinder under the name the linker is asked for. Where gcc or its `libgcc_eh.a` cannot
//! be found, the binary links `libgcc_s` as before (a warning says so).
//!
//! It also names the commit built, for `--version` (`BREACH_AUDIT_COMMIT`, see [`commit`]).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    commit();
    println!("cargo:rerun-if-env-changed=BREACH_AUDIT_DYNAMIC_LIBGCC");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || std::env::var_os("BREACH_AUDIT_DYNAMIC_LIBGCC").is_some()
    {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let found = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        // Without the file, gcc prints the bare name back.
        .filter(|p| p.is_absolute() && p.is_file());
    let Some(eh) = found else {
        println!(
            "cargo:warning=libgcc_eh.a not found ({cc} -print-file-name): linking libgcc_s.so.1"
        );
        return;
    };
    let dir = PathBuf::from(var("OUT_DIR")).join("static-libgcc");
    std::fs::create_dir_all(&dir).expect("OUT_DIR is writable");
    std::fs::copy(&eh, dir.join("libgcc_s.a")).expect("copy libgcc_eh.a into OUT_DIR");
    println!("cargo:rerun-if-changed={}", eh.display());
    println!("cargo:rustc-link-search=native={}", dir.display());
}

/// `breach-audit --version`'s commit (`breach-audit 0.1.0 (1a2b3c4)`): `git rev-parse --short
/// HEAD`, or `BREACH_AUDIT_COMMIT` when set (a build from a source tarball), or "unknown" outside
/// git. Rebuilt when HEAD moves: HEAD itself, the branch it points to, and packed-refs (where a
/// branch's commit lives after `git gc`). The paths come from git (`--git-path`), so a worktree
/// (whose `.git` is a file) works too.
fn commit() {
    println!("cargo:rerun-if-env-changed=BREACH_AUDIT_COMMIT");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = match std::env::var("BREACH_AUDIT_COMMIT") {
        Ok(c) if !c.is_empty() => c,
        _ => git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
    };
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        // Only files that exist: cargo reruns a script whose watched file is missing every time.
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name])
            && std::path::Path::new(&path).is_file()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rustc-env=BREACH_AUDIT_COMMIT={commit}");
}
