//! The `breach-audit` command: parses arguments (in `cli/`, one file per subcommand), runs one engine function per
//! subcommand and turns the outcome into an exit code: 0 nothing found, 1 findings, 2 error,
//! 130 interrupted (Ctrl-C or SIGTERM: long loops stop, temporary files are removed by their owners).

mod cli;

/// How long an interrupted run may take to unwind before it is ended anyway.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let _ = ctrlc::set_handler(|| {
        if breach_audit::fsutil::check_interrupted().is_err() {
            std::process::exit(130);
        }
        breach_audit::fsutil::set_interrupted();
        // Long loops see the flag and unwind, removing their temporary files. Whatever does not
        // (a read blocked on a dead NFS server, say) is cut short: a later run removes what a dead
        // run left behind.
        std::thread::spawn(|| {
            std::thread::sleep(STOP_GRACE);
            eprintln!(
                "breach-audit: interrupted and still busy after {}s; stopping now (a later run removes leftover temporary files)",
                STOP_GRACE.as_secs()
            );
            std::process::exit(130);
        });
    });
    let code = match cli::run(args) {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => cli::Exit::Clean,
        Err(breach_audit::Error::Interrupted) => {
            eprintln!(
                "breach-audit: interrupted; temporary files removed, the previous index and outputs are untouched"
            );
            cli::Exit::Interrupted
        }
        Err(e) => {
            eprintln!("breach-audit: error: {e}");
            cli::Exit::Error
        }
    };
    code.into()
}
