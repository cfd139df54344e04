//! The `breach-audit` command: parses arguments (in `cli.rs`), runs one engine function per
//! subcommand and turns the outcome into an exit code: 0 nothing found, 1 findings, 2 error,
//! 130 interrupted (Ctrl-C or SIGTERM: long loops stop, temporary files are removed by their owners).

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    let _ = ctrlc::set_handler(|| {
        if breach_audit::fsutil::check_interrupted().is_err() {
            std::process::exit(130);
        }
        breach_audit::fsutil::set_interrupted();
    });
    let code = match cli::run(args) {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => 0,
        Err(breach_audit::Error::Interrupted) => {
            eprintln!(
                "breach-audit: interrupted; temporary files removed, the previous index and outputs are untouched"
            );
            130
        }
        Err(e) => {
            eprintln!("breach-audit: error: {e}");
            2
        }
    };
    std::process::exit(code);
}
