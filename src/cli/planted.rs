//! `relu-iht planted`: generate a planted problem, recover it, score it.

use super::args::PlantedArgs;
use super::report::{self, RunRecord};
use anyhow::Result;
use relu_iht::mem::peak_host_bytes;
use relu_iht::tasks::planted;
use relu_iht::Backend;
use serde_json::json;

pub fn run(a: &PlantedArgs) -> Result<()> {
    let spec = a.to_spec()?;
    let config = a.solver.to_config(15, 200)?;
    config.validate(spec.n, (spec.m * spec.d) as u64)?;
    let engine = report::backend(
        a.solver.backend,
        a.solver.quiet || a.solver.json,
        a.solver.device_memory,
    )?;
    crate::with_engine!(engine, b => solve(a, &spec, &config, b))
}

fn solve<B: Backend>(
    a: &PlantedArgs,
    spec: &relu_iht::tasks::planted::PlantedSpec,
    config: &relu_iht::IhtConfig,
    backend: B,
) -> Result<()> {
    let (spec, config) = (*spec, config.clone());
    let name = backend.name();
    let bar = report::progress(0, a.solver.quiet);
    let batches = config.batch_size.map_or(1, |b| spec.n.div_ceil(b));
    bar.set_length((config.steps * batches) as u64);
    let (problem, rec, scores) = planted::run(&spec, &config, backend, |st| {
        bar.set_message(format!(
            "rel. residual {:.3e}, nnz {}",
            st.rel_residual, st.nnz
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let neurons = rec.x.neurons(spec.d).len();
    let record = RunRecord {
        task: "planted",
        method: "iht",
        backend: name,
        n: spec.n,
        d: spec.d,
        m: spec.m,
        s: spec.s,
        k: 1,
        layers: 1,
        steps: rec.steps,
        seed: spec.seed,
        nnz: rec.x.nnz(),
        seconds: rec.seconds,
        peak_host_bytes: peak_host_bytes(),
        peak_device_bytes: rec.peak_device_bytes,
        extra: json!({
            "teacher": spec.teacher,
            "mode": config.mode,
            "batch_size": config.batch_size,
            "inner_steps": config.inner_steps,
            "inflate": config.inflate,
            "refine": config.refine,
            "neurons": neurons,
            "peak_solve_host_bytes": rec.peak_host_bytes,
            "psnr": scores.psnr,
            "rel_error": scores.rel_error,
            "weight_error": scores.weight_error,
        }),
    };
    if a.solver.json {
        return record.print();
    }
    let planted_neurons = problem.truth.neurons(spec.d).len();
    println!(
        "planted: n = {}, d = {}, m = {}, teacher {:?}: {} nonzeros in {} neurons",
        spec.n,
        spec.d,
        spec.m,
        spec.teacher,
        problem.truth.nnz(),
        planted_neurons
    );
    println!(
        "recovered: {} nonzeros in {} neurons after {} steps in {:.2} s ({})",
        rec.x.nnz(),
        neurons,
        rec.steps,
        rec.seconds,
        record.backend
    );
    println!(
        "PSNR {:.2} dB, relative error {:.3e}, weight error {:.3e}",
        scores.psnr, scores.rel_error, scores.weight_error
    );
    println!(
        "peak memory {:.1} MiB through the solve, {:.1} MiB with scoring{}",
        rec.peak_host_bytes as f64 / (1 << 20) as f64,
        record.peak_host_bytes as f64 / (1 << 20) as f64,
        if rec.peak_device_bytes > 0 {
            format!(
                "; {:.2} MiB on the device",
                rec.peak_device_bytes as f64 / (1 << 20) as f64
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
