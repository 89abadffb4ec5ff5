//! The `relu-iht` binary: parse, run, and on failure print the cause chain on one line and exit 2.

mod cli;

fn main() {
    if let Err(e) = cli::main() {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
