//! The command-line interface: clap structs ([`args`]) are turned into validated configs before
//! any work starts, then each subcommand runs ([`planted`], [`bench`]) and reports ([`report`]).

pub mod args;
pub mod bench;
pub mod planted;
pub mod report;

use anyhow::Result;
use clap::Parser;

/// Parses the process arguments and runs the chosen subcommand.
pub fn main() -> Result<()> {
    let cli = args::Cli::parse();
    if let Some(threads) = cli.threads {
        if threads == 0 {
            anyhow::bail!("invalid --threads = 0: must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()?;
    }
    match cli.command {
        args::Command::Planted(a) => planted::run(&a),
        args::Command::Bench(a) => bench::run(&a),
    }
}
