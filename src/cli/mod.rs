//! The command-line interface: clap structs ([`args`]) are turned into validated configs before
//! any work starts, then the engine is opened ([`engine`]), and each subcommand ([`planted`],
//! [`mnist`], [`inr`], [`bench`], [`sweep`], `--method imp` in [`imp`]) runs the library's tasks
//! and reports ([`report`]). Data, models and metrics live in the library, not here.

pub mod args;
pub mod bench;
pub mod engine;
pub mod fit;
pub mod imp;
pub mod inr;
pub mod mnist;
pub mod planted;
pub mod predict;
pub mod report;
pub mod save;
pub mod sweep;

use anyhow::Result;
use clap::Parser;

/// `relu-iht devices`: every adapter with the limits that size the engine's tiles.
fn devices(a: &args::DevicesArgs) -> Result<()> {
    let all = relu_iht::gpu::context::adapters();
    if all.is_empty() {
        eprintln!("no GPU adapters found (install a Vulkan driver, e.g. mesa-vulkan-drivers)");
    }
    for ad in all {
        if a.json {
            println!("{}", serde_json::to_string(&ad)?);
        } else {
            let features: Vec<&str> = [
                (ad.timestamps, "timestamps"),
                (ad.shader_f16, "f16"),
                (ad.subgroups, "subgroups"),
            ]
            .iter()
            .filter(|f| f.0)
            .map(|f| f.1)
            .collect();
            println!(
                "{} [{}, {}{}] driver {}; max storage binding {} MiB, max buffer {} MiB, {} workgroups per dimension; features: {}",
                ad.name,
                ad.backend,
                ad.device_type,
                if ad.is_hardware() { "" } else { ", software" },
                ad.driver,
                ad.max_storage_buffer_binding_size >> 20,
                ad.max_buffer_size >> 20,
                ad.max_compute_workgroups_per_dimension,
                if features.is_empty() { "none".to_string() } else { features.join(", ") }
            );
        }
    }
    Ok(())
}

/// Clap's message on one line, like every other error, keeping its substance (the missing
/// argument's name, the near-miss tip, the possible values) and dropping the usage and the
/// pointer to --help.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("Usage:") || line.starts_with("For more information")
        {
            continue;
        }
        let line = line.trim_start_matches("error: ");
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    if out.is_empty() {
        "invalid arguments".into()
    } else {
        out
    }
}

/// Parses the process arguments and runs the chosen subcommand.
pub fn main() -> Result<()> {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            // Help, version, and no arguments at all: clap prints them (the last with exit 2).
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            anyhow::bail!("{}", one_line(&e.render().to_string()));
        }
    };
    if let Some(threads) = cli.threads {
        if threads == 0 {
            anyhow::bail!("invalid --threads = 0: must be at least 1");
        }
        // Far more threads than cores only costs their start-up (and memory).
        let cores = std::thread::available_parallelism().map_or(8, |c| c.get());
        let most = 16 * cores.max(1);
        if threads > most {
            anyhow::bail!(
                "invalid --threads = {threads}: at most {most} (16 per core on this machine's {cores})"
            );
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()?;
    }
    let done = match cli.command {
        args::Command::Planted(a) => planted::run(&a),
        args::Command::Mnist(a) => mnist::run(&a),
        args::Command::Inr(a) => inr::run(&a),
        args::Command::Bench(a) => bench::run(&a),
        args::Command::Devices(a) => devices(&a),
        args::Command::Sweep(a) => sweep::run(&a),
        args::Command::Fit(a) => fit::run(&a),
        args::Command::Predict(a) => predict::predict(&a),
        args::Command::Render(a) => predict::render(&a),
    };
    if done.is_ok() {
        engine::print_profile();
    }
    done
}
