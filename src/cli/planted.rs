//! `relu-iht planted`: generate a planted problem, recover it, score it.

use super::args::{MethodChoice, PlantedArgs};
use super::engine;
use super::imp::{self, ImpRun};
use super::report::{self, RunRecord};
use super::save;
use anyhow::Result;
use relu_iht::io::model_file::Kind;
use relu_iht::mem::peak_host_bytes;
use relu_iht::problem::model::Loss;
use relu_iht::tasks::metrics;
use relu_iht::tasks::planted::{self, PlantedSpec};
use relu_iht::{Backend, CpuBackend, Data, IhtConfig};
use serde_json::json;

pub fn run(a: &PlantedArgs) -> Result<()> {
    let spec = a.to_spec()?;
    let config = a.solver.to_config(15, 200)?;
    a.solver.refuse_checkpoint("planted")?;
    a.solver.check_save()?;
    a.solver.check_trace()?;
    if a.k == 0 {
        anyhow::bail!("invalid --k = 0: need at least one output");
    }
    if a.k > 1 {
        a.solver.refuse_trace()?;
        a.solver.refuse_f64("the vector-output model (--k > 1)")?;
        // Targets n × k, Ŷ and the residual of the same size, on top of X.
        let bytes = 12 * spec.n as u128 * a.k as u128 + 8 * spec.n as u128 * spec.d as u128;
        relu_iht::mem::check_fits("k", a.k, bytes)?;
        return vector(a, &spec, &config);
    }
    config.validate(spec.n, (spec.m * spec.d) as u64)?;
    if a.solver.method == MethodChoice::Imp {
        let data = if a.solver.layers == 1 {
            planted::generate(&spec, &mut CpuBackend::new())?.data
        } else {
            planted::generate_deep(&spec, a.solver.layers)?.0
        };
        return imp_fit(a, &spec, &config, &data, data.y(), 1);
    }
    let engine = engine::for_run(&a.solver)?;
    crate::with_engine!(engine, b => solve(a, &spec, &config, b))
}

fn solve<B: Backend>(
    a: &PlantedArgs,
    spec: &PlantedSpec,
    config: &IhtConfig,
    backend: B,
) -> Result<()> {
    let (spec, config) = (*spec, config.clone());
    let layers = a.solver.layers;
    let name = backend.name();
    let bar = report::progress(layers * config.total_steps(spec.n), a.solver.quiet);
    let (_, deep, scores) =
        planted::run_deep(&spec, layers, &config, backend, report::layer_step(&bar))?;
    bar.finish_and_clear();
    let rec = deep.last();
    let neurons = deep.neurons();
    let mut record = RunRecord::scalar_iht(
        "planted",
        name,
        (spec.n, spec.d, spec.m, spec.s),
        spec.seed,
        &deep,
        json!({
            "teacher": spec.teacher,
            "mode": config.mode,
            "batch_size": config.batch_size,
            "inner_steps": config.inner_steps,
            "inflate": config.inflate,
            "refine": config.refine,
            "neurons": neurons,
            "peak_solve_host_bytes": rec.peak_host_bytes,
            "psnr": scores.psnr,
            "exact_fit": scores.psnr == f64::INFINITY,
            "rel_error": scores.rel_error,
            "weight_error": scores.weight_error,
            "weight_matching": scores.weight_matching,
        }),
    );
    let meta = save::meta("planted", Kind::Regressor, &a.solver, &config, spec.m);
    save::save(&a.solver, deep.network(spec.d)?, meta, &mut record)?;
    report::write_trace(&a.solver, &deep)?;
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
    let placed = if layers == 1 {
        format!("in {neurons} neurons")
    } else {
        format!("({} in the last layer's {neurons} neurons)", rec.x.nnz())
    };
    println!(
        "recovered: {} nonzeros {placed} after {} steps in {:.2} s ({})",
        deep.nnz(),
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

/// `planted --k K` (K > 1): the planted network `y = relu(X W1) W2` with `s/2` N(0, 1) weights in
/// W1 (d × m) and in W2 (m × k), as the paper's code plants it, fitted by the vector-output model
/// (MSE) on either engine, with `--layers` stacking greedily.
fn vector(a: &PlantedArgs, spec: &PlantedSpec, config: &IhtConfig) -> Result<()> {
    use relu_iht::solver::vector::VectorConfig;
    let (n, d, m, k) = (spec.n, spec.d, spec.m, a.k);
    let planted::PlantedVector {
        data,
        targets: y,
        w1,
        w2,
    } = planted::generate_vector(spec, k)?;
    if a.solver.method == MethodChoice::Imp {
        return imp_fit(a, spec, config, &data, &y, k);
    }
    let vc = VectorConfig::from_iht(config, Loss::Mse, a.select.into(), None);
    let layers = a.solver.layers;
    let engine = engine::for_run(&a.solver)?;
    let (yhat, seconds, nnz, steps, backend, peak_device, network) = crate::with_engine!(engine, b => {
        let (mut model, seconds, _) =
            report::fit_vector(b, data.clone(), y.clone(), k, m, &vc, layers, a.solver.quiet)?;
        let yhat = model.predict(data)?;
        let network = model.network()?;
        let be = model.last.backend();
        (yhat, seconds, model.nnz(), model.steps(), be.name(), be.peak_device_bytes(), network)
    });
    let (psnr, rel) = (metrics::psnr(&y, &yhat), metrics::rel_error(&y, &yhat));
    let mut record = RunRecord {
        task: "planted",
        method: "iht",
        backend,
        n,
        d,
        m,
        s: vc.s,
        k,
        layers,
        steps,
        seed: spec.seed,
        nnz,
        seconds,
        peak_host_bytes: peak_host_bytes(),
        peak_device_bytes: peak_device,
        extra: json!({
            "teacher": "relu",
            "mode": vc.mode,
            "select": vc.select,
            "step_size": vc.step_size(m),
            "batch_size": vc.batch_size,
            "psnr": psnr,
            "exact_fit": psnr == f64::INFINITY,
            "rel_error": rel,
            "weight_error": null,
        }),
    };
    let meta = save::meta("planted", Kind::Regressor, &a.solver, config, m);
    save::save(&a.solver, network, meta, &mut record)?;
    if a.solver.json {
        return record.print();
    }
    println!(
        "planted k = {k}: n = {n}, d = {d}, m = {m}, {} + {} planted weights; recovered {nnz} nonzeros after {steps} steps ({layers} layer(s)) in {seconds:.2} s",
        w1.nnz(), w2.nnz()
    );
    println!("PSNR {psnr:.2} dB, relative error {rel:.3e}");
    Ok(())
}

/// `--method imp`: the IMP baseline on the planted data, scored on the training points.
fn imp_fit(
    a: &PlantedArgs,
    spec: &PlantedSpec,
    config: &IhtConfig,
    data: &Data,
    y: &[f32],
    k: usize,
) -> Result<()> {
    let run = ImpRun {
        task: "planted",
        solver: &a.solver,
        config,
        m: spec.m,
        k,
        loss: Loss::Mse,
        data,
        targets: y,
        extra: json!({"teacher": format!("{:?}", spec.teacher).to_lowercase(), "weight_error": null}),
    };
    imp::run(run, |model, _| {
        let yhat = model.predict(data)?;
        let (psnr, rel) = (metrics::psnr(y, &yhat), metrics::rel_error(y, &yhat));
        Ok((
            json!({"psnr": psnr, "exact_fit": psnr == f64::INFINITY, "rel_error": rel}),
            format!("PSNR {psnr:.2} dB, relative error {rel:.3e}"),
        ))
    })
}
