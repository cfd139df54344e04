//! The `breach-audit` command. Everything is in the library's `cli` module (flags, the glue to the
//! engine, exit codes: 0 nothing found, 1 findings, 2 error, 130 interrupted; see `--help`).

fn main() -> std::process::ExitCode {
    breach_audit::cli::main()
}
