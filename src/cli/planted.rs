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
    let layers = a.solver.layers;
    let name = backend.name();
    let bar = report::progress(0, a.solver.quiet);
    let batches = config.batch_size.map_or(1, |b| spec.n.div_ceil(b));
    bar.set_length((layers * config.steps * batches) as u64);
    let (_, deep, scores) = planted::run_deep(&spec, layers, &config, backend, |l, st| {
        bar.set_message(format!(
            "layer {}, rel. residual {:.3e}, nnz {}",
            l + 1,
            st.rel_residual,
            st.nnz
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let rec = deep.last();
    let d_last = if layers == 1 { spec.d } else { spec.m };
    let neurons = rec.x.neurons(d_last).len();
    let record = RunRecord {
        task: "planted",
        method: "iht",
        backend: name,
        n: spec.n,
        d: spec.d,
        m: spec.m,
        s: spec.s,
        k: 1,
        layers,
        steps: deep.steps(),
        seed: spec.seed,
        nnz: deep.nnz(),
        seconds: deep.seconds(),
        peak_host_bytes: peak_host_bytes(),
        peak_device_bytes: deep
            .layers
            .iter()
            .map(|r| r.peak_device_bytes)
            .max()
            .unwrap_or(0),
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
    if layers == 1 {
        let truth = planted::planted_weights(&spec);
        println!(
            "planted: n = {}, d = {}, m = {}, teacher {:?}: {} nonzeros in {} neurons",
            spec.n,
            spec.d,
            spec.m,
            spec.teacher,
            truth.nnz(),
            truth.neurons(spec.d).len()
        );
    } else {
        println!(
            "planted: n = {}, d = {}, m = {}, {layers} hidden layers of {} nonzeros each",
            spec.n,
            spec.d,
            spec.m,
            spec.s / layers
        );
    }
    println!(
        "recovered: {} nonzeros ({} in the last layer's {} neurons) after {} steps in {:.2} s ({})",
        deep.nnz(),
        rec.x.nnz(),
        neurons,
        deep.steps(),
        deep.seconds(),
        record.backend
    );
    if layers == 1 {
        println!(
            "PSNR {:.2} dB, relative error {:.3e}, weight error {:.3e}",
            scores.psnr, scores.rel_error, scores.weight_error
        );
    } else {
        println!(
            "PSNR {:.2} dB, relative error {:.3e}",
            scores.psnr, scores.rel_error
        );
    }
    println!(
        "peak memory {:.1} MiB through the solve, {:.1} MiB with scoring{}",
        rec.peak_host_bytes as f64 / (1 << 20) as f64,
        record.peak_host_bytes as f64 / (1 << 20) as f64,
        if record.peak_device_bytes > 0 {
            format!(
                "; {:.2} MiB on the device",
                record.peak_device_bytes as f64 / (1 << 20) as f64
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
