//! `breach-audit generate-assets DIR`: the man pages and shell completions that the packages
//! install, written from the command's own clap definition (scripts/package.sh runs it). A
//! packaging aid, not a command of the contract: it is answered before clap, like `--version`, so
//! it is in no `--help`, man page or completion.
//!
//! Writes `DIR/man/breach-audit.1` and one page per subcommand (`breach-audit-audit.1`,
//! `breach-audit-state-migrate.1`, ...), and `DIR/completions/` `breach-audit.bash`,
//! `_breach-audit` (zsh) and `breach-audit.fish`.

use std::path::Path;

use clap::CommandFactory;

/// `Some(DIR)` when the arguments are exactly `generate-assets DIR`.
pub(super) fn requested(
    mut args: impl Iterator<Item = std::ffi::OsString>,
) -> Option<std::path::PathBuf> {
    match (args.next(), args.next(), args.next()) {
        (Some(a), Some(dir), None) if a == "generate-assets" => Some(dir.into()),
        _ => None,
    }
}

/// Writes the man pages and completions under `dir` (created if missing).
pub(super) fn generate(dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    // clap_mangen builds the command (with no `help` subcommand, so no `breach-audit-help-*`
    // pages); building applies each subcommand's deferred flags (`Deferred`), so every page lists
    // them.
    clap_mangen::generate_to(super::Cli::command(), &man)?;
    let mut cmd = super::Cli::command();
    use clap_complete::Shell;
    for (shell, name) in [
        (Shell::Bash, "breach-audit.bash"),
        (Shell::Zsh, "_breach-audit"),
        (Shell::Fish, "breach-audit.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, "breach-audit", &mut out);
        std::fs::write(completions.join(name), out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_for_every_subcommand_and_three_completions() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            requested(args(&["generate-assets", "d"]).into_iter()),
            Some("d".into())
        );
        for other in [
            &["generate-assets"][..],
            &["generate-assets", "d", "e"],
            &["audit", "d"],
        ] {
            assert_eq!(requested(args(other).into_iter()), None, "{other:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path()).unwrap();
        let man = |name: &str| std::fs::read_to_string(dir.path().join("man").join(name));
        let top = man("breach-audit.1").unwrap();
        assert!(top.contains(".TH breach-audit 1"), "{top}");
        for sub in [
            "audit",
            "build",
            "lookup",
            "serve",
            "state",
            "state-migrate",
        ] {
            let page = man(&format!("breach-audit-{sub}.1")).unwrap();
            assert!(page.starts_with(".ie"), "{sub}: {page}");
        }
        // Each subcommand's deferred flags are on its page.
        assert!(man("breach-audit-audit.1").unwrap().contains("config"));
        assert!(man("breach-audit-help.1").is_err());
        for name in ["breach-audit.bash", "_breach-audit", "breach-audit.fish"] {
            let text = std::fs::read_to_string(dir.path().join("completions").join(name)).unwrap();
            assert!(text.contains("lookup"), "{name}");
            assert!(!text.contains("generate-assets"), "{name}");
        }
    }
}
