//! `--save`: the fitted network and what it came from, written as the model file
//! ([`relu_iht::io::model_file`]) after the fit; the path was checked before any work
//! ([`super::args::SolverArgs::check_save`]).

use super::args::SolverArgs;
use anyhow::Result;
use relu_iht::io::model_file::{self, Kind, Meta, Model};
use relu_iht::problem::network::Network;
use relu_iht::IhtConfig;

/// The metadata of a fit by `task` with `m` neurons per layer.
pub fn meta(task: &str, kind: Kind, solver: &SolverArgs, config: &IhtConfig, m: usize) -> Meta {
    Meta::new(
        kind,
        task,
        config.mode,
        (m, config.s, solver.layers, config.seed),
    )
}

/// Writes the model when `--save` was given and notes the path in the run's record.
pub fn save(
    solver: &SolverArgs,
    network: Network,
    meta: Meta,
    record: &mut super::report::RunRecord,
) -> Result<()> {
    let Some(path) = &solver.save else {
        return Ok(());
    };
    model_file::save(path, &Model { network, meta })?;
    if let Some(obj) = record.extra.as_object_mut() {
        obj.insert("saved".into(), path.display().to_string().into());
    }
    if !solver.json {
        println!("saved the model to {}", path.display());
    }
    Ok(())
}
