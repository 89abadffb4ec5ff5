//! `relu-iht bench`: the speed and memory figures of the README. For every (n, m, s) it times
//! (1) the dense gradient pass — masks `Z = X H` and `G = Xᵀ(M ∘ r)` over all m neurons with
//! random generators, fused with the top-s — reporting GFLOP/s over its 4·n·d·m flops (best of
//! `--repeats`), (2) the support products `A_T z` / `A_Tᵀ r` in GB/s of X traffic, and (3) a whole
//! planted solve, per step.

use super::args::BenchArgs;
use super::report;
use anyhow::Result;
use relu_iht::backend::Backend;
use relu_iht::data::Data;
use relu_iht::iht::IhtConfig;
use relu_iht::mem::peak_host_bytes;
use relu_iht::operator::{Generators, Operator};
use relu_iht::tasks::planted::{self, PlantedSpec, Teacher};
use relu_iht::SparseVec;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

pub fn run(a: &BenchArgs) -> Result<()> {
    for &n in &a.n {
        for &m in &a.m {
            for &s in &a.s {
                // Validate the whole sweep before timing anything.
                PlantedSpec {
                    n,
                    d: a.d,
                    m,
                    s,
                    seed: 0,
                    teacher: Teacher::Relu,
                }
                .validate()?;
            }
        }
    }
    if !a.json {
        println!(
            "{:>7} {:>4} {:>7} {:>6} {:>8} {:>10} {:>9} {:>9} {:>10} {:>9} {:>10}",
            "n",
            "d",
            "m",
            "s",
            "backend",
            "grad ms",
            "GFLOP/s",
            "supp GB/s",
            "solve s",
            "step ms",
            "peak MiB"
        );
    }
    for &n in &a.n {
        for &m in &a.m {
            for &s in &a.s {
                one(a, n, m, s)?;
            }
        }
    }
    Ok(())
}

fn one(a: &BenchArgs, n: usize, m: usize, s: usize) -> Result<()> {
    let d = a.d;
    let mut be = report::backend(a.backend, true)?;
    let spec = PlantedSpec {
        n,
        d,
        m,
        s,
        seed: 0,
        teacher: Teacher::Relu,
    };
    let problem = planted::generate(&spec, &mut be)?;
    let data: Arc<Data> = problem.data.clone();
    let op = Operator::new(data.clone(), m, Generators::Random { seed: 0 })?;
    let r = be.upload(data.y())?;
    let x = SparseVec::zeros(op.cols());

    // (1) Dense gradient pass over all m neurons.
    let mut grad_best = f64::INFINITY;
    for _ in 0..a.repeats.max(1) {
        let t0 = Instant::now();
        let top = be.gradient_topk(&op, &x, &r, 1.0, s)?;
        grad_best = grad_best.min(t0.elapsed().as_secs_f64());
        std::hint::black_box(top);
    }
    let flops = 4.0 * n as f64 * d as f64 * m as f64;

    // (2) Support products on a support of s entries spread over min(m, s) neurons.
    let support = be.gradient_topk(&op, &x, &r, 1.0, s)?;
    be.prepare_support(&op, support.indices())?;
    let t0 = Instant::now();
    let reps = 5;
    for _ in 0..reps {
        let f = be.forward(&op, support.values())?;
        std::hint::black_box(be.adjoint(&op, &f)?);
    }
    let supp_secs = t0.elapsed().as_secs_f64() / (2 * reps) as f64;
    // Each product streams one column of X (n floats) per support entry.
    let supp_gbs = 4.0 * n as f64 * support.nnz() as f64 / supp_secs / 1e9;

    // (3) A whole solve of the planted problem.
    let (solve_secs, steps, psnr) = if a.steps > 0 {
        let config = IhtConfig::new(s, a.steps);
        let op = Operator::new(data, m, Generators::Random { seed: 0 })?;
        let mut solver = relu_iht::Iht::new(be, op, config)?;
        let rec = solver.solve(|_| {})?;
        let mut be = solver.into_backend();
        let scores = planted::score(&problem, &rec, &mut be)?;
        (rec.seconds, rec.steps, scores.psnr)
    } else {
        (0.0, 0, f64::NAN)
    };
    let peak = peak_host_bytes();
    let step_ms = if steps > 0 {
        1e3 * solve_secs / steps as f64
    } else {
        0.0
    };
    if a.json {
        println!(
            "{}",
            json!({
                "task": "bench", "backend": "cpu", "n": n, "d": d, "m": m, "s": s,
                "threads": rayon::current_num_threads(),
                "gradient_seconds": grad_best, "gradient_gflops": flops / grad_best / 1e9,
                "support_product_seconds": supp_secs, "support_gbps": supp_gbs,
                "solve_seconds": solve_secs, "steps": steps, "step_ms": step_ms, "psnr": psnr,
                "peak_host_bytes": peak, "peak_device_bytes": 0,
            })
        );
    } else {
        println!(
            "{:>7} {:>4} {:>7} {:>6} {:>8} {:>10.1} {:>9.1} {:>9.2} {:>10.2} {:>9.1} {:>10.1}",
            n,
            d,
            m,
            s,
            "cpu",
            grad_best * 1e3,
            flops / grad_best / 1e9,
            supp_gbs,
            solve_secs,
            step_ms,
            peak as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}
