//! `relu-iht bench`: the speed and memory figures of the README, on every requested backend. For
//! every (n, m, s) it times (1) the gradient phase from x = 0 — masks `Z = X H` and
//! `G = Xᵀ(M ∘ r)` over all m neurons with random generators, fused with the running top-s —
//! reporting GFLOP/s over its 4·n·d·m flops (best of `--repeats`), (2) the support phase's inner
//! step — one pass computing `A_T z` and `A_Tᵀ` of it (`supp ms` is half a pass, one product) —
//! in GB/s of X columns the two products read, and in GB/s of distinct bytes it streams from
//! memory (X's columns in T, the masks) beside the machine's streaming read rate, and (3) a whole planted solve, step by step, with
//! what each step sent to the device (submissions, readbacks, dispatches, objects created); then
//! the GPU/CPU time ratios.

use super::args::BenchArgs;
use super::engine;
use anyhow::Result;
use relu_iht::backend::{Backend, Counters, Elem, SupportOps};
use relu_iht::mem::peak_host_bytes;
use relu_iht::problem::operator::{Generators, Operator};
use relu_iht::solver::scalar::IhtConfig;
use relu_iht::tasks::planted::{self, PlantedSpec, Teacher};
use relu_iht::SparseVec;
use serde::Serialize;
use std::time::Instant;

/// One backend on one configuration.
#[derive(Debug, Serialize)]
struct Row {
    task: &'static str,
    backend: String,
    n: usize,
    d: usize,
    m: usize,
    s: usize,
    gradient_seconds: f64,
    gradient_gflops: f64,
    /// GPU rows on a device with timestamp queries: the gradient kernel's (`masked_gradient`)
    /// 2·n·d·m flops over its device time per pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    gradient_kernel_gflops: Option<f64>,
    /// `--peak-gflops`, and on GPU rows the fraction of it the gradient kernel reaches (by
    /// timestamps where present, else the whole pass by wall time).
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_gflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gradient_peak_fraction: Option<f64>,
    /// Activation bits of the support's neurons (`relu_mask` over all rows).
    mask_seconds: f64,
    /// Half of the best fused inner-step pass (`A_T z` and its adjoint).
    support_product_seconds: f64,
    /// `4·n·|T|` bytes of X columns per product, over `support_product_seconds`.
    support_gbps: f64,
    /// Distinct bytes a pass streams (X's columns in T, the masks, q and y), per second.
    support_pass_memory_gbps: f64,
    /// GPU rows on a device with timestamp queries: device milliseconds per solver step of each
    /// kernel entry point (`"<kernel>.<entry>"`), over the timed solve.
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_ms: Option<std::collections::BTreeMap<String, f64>>,
    solve_seconds: f64,
    steps: usize,
    step_ms: f64,
    psnr: f64,
    peak_host_bytes: u64,
    peak_device_bytes: u64,
    /// Means over the solve's steps after the first.
    submits_per_step: f64,
    readbacks_per_step: f64,
    readback_bytes_per_step: f64,
    /// Milliseconds the host waits per readback (submission to bytes in hand), mean over the
    /// solve's steps after the first.
    readback_wait_ms: f64,
    dispatches_per_step: f64,
    /// Device buffers and bind groups created from the solve's third step on (0: every object is
    /// built once and reused).
    buffers_created_after_warmup: u64,
    bind_groups_created_after_warmup: u64,
    /// This backend's solve time over the CPU's (GPU rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    solve_ratio_to_cpu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gradient_ratio_to_cpu: Option<f64>,
}

pub fn run(a: &BenchArgs) -> Result<()> {
    for &n in &a.n {
        for &m in &a.m {
            for &s in &a.s {
                // Validate the whole sweep before timing anything.
                spec(n, a.d, m, s).validate()?;
            }
        }
    }
    if !a.json {
        let head = [
            "n",
            "d",
            "m",
            "s",
            "backend",
            "grad ms",
            "GFLOP/s",
            "mask ms",
            "supp ms",
            "GB/s",
            "pass GB/s",
            "step ms",
            "solve s",
            "host MiB",
            "dev MiB",
            "GPU/CPU",
        ];
        println!(
            "{:>7} {:>4} {:>7} {:>6} {:<22} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8}",
            head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7], head[8],
            head[9], head[10], head[11], head[12], head[13], head[14], head[15]
        );
    }
    let mut first = true;
    for &n in &a.n {
        for &m in &a.m {
            for &s in &a.s {
                let mut cpu: Option<(f64, f64)> = None;
                for engine in engine::for_bench(
                    a.backend,
                    a.precision,
                    relu_iht::gpu::context::GpuOptions {
                        x_f16: a.gpu_f16,
                        subgroups: a.gpu_subgroups,
                    },
                    !first,
                    a.device_memory,
                )? {
                    let mut row = crate::with_engine!(engine, b => measure(a, b, n, m, s))?;
                    match cpu {
                        None => cpu = Some((row.solve_seconds, row.gradient_seconds)),
                        Some((solve, grad)) => {
                            row.solve_ratio_to_cpu = Some(row.solve_seconds / solve);
                            row.gradient_ratio_to_cpu = Some(row.gradient_seconds / grad);
                        }
                    }
                    print(a.json, &row)?;
                }
                first = false;
            }
        }
    }
    // Last, so that its buffer does not count in the rows' peak memory.
    let read = host_read_gbps();
    let isa = relu_iht::cpu::simd::Isa::current().name();
    if a.json {
        let line =
            serde_json::json!({"task": "bench-host", "host_read_gbps": read, "cpu_kernels": isa});
        println!("{line}");
    } else {
        println!("GPU/CPU: the GPU engine's solve time over the CPU engine's (above 1: the GPU is slower)");
        println!("host streaming read {read:.1} GB/s (pass GB/s is a fraction of it); CPU kernels: {isa}");
    }
    Ok(())
}

fn spec(n: usize, d: usize, m: usize, s: usize) -> PlantedSpec {
    PlantedSpec {
        n,
        d,
        m,
        s,
        seed: 0,
        teacher: Teacher::Relu,
    }
}

fn print(json: bool, r: &Row) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let ratio = r
        .solve_ratio_to_cpu
        .map_or("".into(), |x| format!("{x:.2}×"));
    println!(
        "{:>7} {:>4} {:>7} {:>6} {:<22} {:>9.1} {:>8.1} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>8.1} {:>8.2} {:>9.1} {:>9.1} {:>8}",
        r.n,
        r.d,
        r.m,
        r.s,
        r.backend.chars().take(22).collect::<String>(),
        r.gradient_seconds * 1e3,
        r.gradient_gflops,
        r.mask_seconds * 1e3,
        r.support_product_seconds * 1e3,
        r.support_gbps,
        r.support_pass_memory_gbps,
        r.step_ms,
        r.solve_seconds,
        mib(r.peak_host_bytes),
        mib(r.peak_device_bytes),
        ratio
    );
    if let Some(k) = &r.kernel_ms {
        let mut by_time: Vec<(&String, &f64)> = k.iter().collect();
        by_time.sort_by(|a, b| b.1.total_cmp(a.1));
        let list: Vec<String> = by_time
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.2}"))
            .collect();
        println!(
            "    device ms per step by kernel (timestamps): {}",
            list.join(", ")
        );
    }
    if r.readbacks_per_step > 0.0 {
        println!(
            "    readbacks per step {:.1}, host wait per readback {:.3} ms, submissions per step {:.1}",
            r.readbacks_per_step, r.readback_wait_ms, r.submits_per_step
        );
    }
    if let Some(g) = r.gradient_kernel_gflops {
        println!("    gradient kernel (timestamps): {g:.1} GFLOP/s");
    }
    if let (Some(f), Some(p)) = (r.gradient_peak_fraction, r.peak_gflops) {
        println!(
            "    gradient kernel at {:.2}% of the {p} GFLOP/s fp32 peak",
            100.0 * f
        );
    }
    Ok(())
}

/// Per-step means of the steps after the first, and the objects created from the fourth on (the
/// first two steps use random generators; the third, the first with `h = w`, binds the support's
/// masks and sparse generators for the first time).
#[derive(Default)]
struct StepCounts {
    submits: f64,
    readbacks: f64,
    readback_bytes: f64,
    readback_wait_ms: f64,
    dispatches: f64,
    buffers_after_warmup: u64,
    bind_groups_after_warmup: u64,
}

impl StepCounts {
    fn of(steps: &[Counters]) -> Self {
        let later = steps.get(1..).unwrap_or_default();
        let k = later.len().max(1) as f64;
        let mean = |f: fn(&Counters) -> u64| later.iter().map(f).sum::<u64>() as f64 / k;
        let warm = steps.get(3..).unwrap_or_default();
        Self {
            submits: mean(|c| c.submits),
            readbacks: mean(|c| c.readbacks),
            readback_bytes: mean(|c| c.readback_bytes),
            readback_wait_ms: {
                let (us, k): (u64, u64) = later.iter().fold((0, 0), |(u, k), c| {
                    (u + c.readback_wait_us, k + c.readbacks)
                });
                us as f64 / 1e3 / k.max(1) as f64
            },
            dispatches: mean(|c| c.dispatches),
            buffers_after_warmup: warm.iter().map(|c| c.buffers_created).sum(),
            bind_groups_after_warmup: warm.iter().map(|c| c.bind_groups_created).sum(),
        }
    }
}

fn measure<B: Backend + SupportOps>(
    a: &BenchArgs,
    mut be: B,
    n: usize,
    m: usize,
    s: usize,
) -> Result<Row> {
    let d = a.d;
    let name = be.name();
    let problem = planted::generate(&spec(n, d, m, s), &mut be)?;
    let data = problem.data.clone();
    let op = Operator::new(data.clone(), m, Generators::Random { seed: 0 })?;
    let x = SparseVec::zeros(op.cols());

    // (1) The gradient phase over all m neurons (x = 0: its support work is empty).
    let mut grad_best = f64::INFINITY;
    let mut support = x.clone();
    let repeats = a.repeats.max(1);
    // Timestamps over the repeats (the GPU's gradient kernel alone); wall time stays the measure
    // of the whole pass.
    let profiling = be.start_profile();
    for _ in 0..repeats {
        be.forget_kept();
        let t0 = Instant::now();
        let phase = be.gradient_phase(&op, &x, s)?;
        grad_best = grad_best.min(t0.elapsed().as_secs_f64());
        support = phase.z0;
    }
    let grad_times = if profiling { be.take_profile() } else { None };
    let flops = 4.0 * n as f64 * d as f64 * m as f64;
    // The split products (the tiled entry on a GPU, a barrier-free one on a CPU adapter) and the
    // pairwise sum of the splits: every entry of the kernel but the scatter of the iterate.
    let gradient_kernel_gflops = grad_times
        .as_ref()
        .map(|t| {
            t.iter()
                .filter(|(k, _)| {
                    let (kernel, entry) = k.split_once('.').unwrap_or((k, ""));
                    kernel.trim_end_matches("_f32") == "masked_gradient" && entry != "scatter"
                })
                .map(|(_, (ms, _))| *ms)
                .sum::<f64>()
        })
        .filter(|ms| *ms > 0.0)
        .map(|ms| flops / 2.0 / (ms / 1e3 / repeats as f64) / 1e9);
    let is_gpu = name.starts_with("gpu");
    let gradient_peak_fraction = a
        .peak_gflops
        .filter(|_| is_gpu)
        .map(|peak| gradient_kernel_gflops.unwrap_or(flops / grad_best / 1e9) / peak);

    // (2) Support products on a support of s entries spread over min(m, s) neurons.
    let t0 = Instant::now();
    be.prepare_support(&op, support.indices())?;
    let mask_secs = t0.elapsed().as_secs_f64();
    let values: Vec<B::Elem> = (support.values().iter())
        .map(|&v| B::Elem::from_f64(v as f64))
        .collect();
    let mut pass_best = f64::INFINITY;
    for _ in 0..5 {
        let t0 = Instant::now();
        std::hint::black_box(be.forward_adjoint(&op, &values, false)?);
        pass_best = pass_best.min(t0.elapsed().as_secs_f64());
    }
    let supp_secs = pass_best / 2.0;
    let supp_gbs = 4.0 * n as f64 * support.nnz() as f64 / supp_secs / 1e9;
    let columns: std::collections::BTreeSet<u32> =
        support.indices().iter().map(|&c| c % d as u32).collect();
    let neurons: std::collections::BTreeSet<u32> =
        support.indices().iter().map(|&c| c / d as u32).collect();
    let pass_bytes = 4 * n * columns.len() + n.div_ceil(8) * neurons.len() + 8 * n;
    let pass_gbs = pass_bytes as f64 / pass_best / 1e9;

    // (3) A whole solve of the planted problem, step by step.
    let (solve_secs, steps, psnr, peak_device, counts, kernel_ms) = if a.steps > 0 {
        // Device kernels timed by timestamp queries where the device has them (one small extra
        // readback per submission, not counted in `readbacks`).
        let profiling = be.start_profile();
        be.forget_kept();
        let mut solver = relu_iht::Iht::new(be, op, IhtConfig::new(s, a.steps))?;
        let mut per_step = Vec::new();
        let t0 = Instant::now();
        while solver.steps_taken() < solver.total_steps() {
            let before = solver.backend().counters();
            solver.step()?;
            per_step.push(solver.backend().counters().since(&before));
        }
        let secs = t0.elapsed().as_secs_f64();
        let rec = solver.solve()?;
        let mut be = solver.into_backend();
        let times = if profiling { be.take_profile() } else { None };
        let kernel_ms = times.map(|t| {
            let steps = rec.steps.max(1) as f64;
            t.into_iter()
                .map(|(name, (ms, _))| (name, ms / steps))
                .collect::<std::collections::BTreeMap<String, f64>>()
        });
        let scores = planted::score(&problem, &rec, &mut be)?;
        let counts = StepCounts::of(&per_step);
        (
            secs,
            rec.steps,
            scores.psnr,
            be.peak_device_bytes(),
            counts,
            kernel_ms,
        )
    } else {
        (
            0.0,
            0,
            f64::NAN,
            be.peak_device_bytes(),
            StepCounts::default(),
            None,
        )
    };
    Ok(Row {
        task: "bench",
        backend: name,
        n,
        d,
        m,
        s,
        gradient_seconds: grad_best,
        gradient_gflops: flops / grad_best / 1e9,
        gradient_kernel_gflops,
        peak_gflops: a.peak_gflops,
        gradient_peak_fraction,
        mask_seconds: mask_secs,
        support_product_seconds: supp_secs,
        support_gbps: supp_gbs,
        support_pass_memory_gbps: pass_gbs,
        kernel_ms,
        solve_seconds: solve_secs,
        steps,
        step_ms: if steps > 0 {
            1e3 * solve_secs / steps as f64
        } else {
            0.0
        },
        psnr,
        peak_host_bytes: peak_host_bytes(),
        peak_device_bytes: peak_device,
        submits_per_step: counts.submits,
        readbacks_per_step: counts.readbacks,
        readback_bytes_per_step: counts.readback_bytes,
        readback_wait_ms: counts.readback_wait_ms,
        dispatches_per_step: counts.dispatches,
        buffers_created_after_warmup: counts.buffers_after_warmup,
        bind_groups_created_after_warmup: counts.bind_groups_after_warmup,
        solve_ratio_to_cpu: None,
        gradient_ratio_to_cpu: None,
    })
}

/// The host's streaming read rate in GB/s: the best of three parallel sums over 256 MiB.
fn host_read_gbps() -> f64 {
    use rayon::prelude::*;
    let v = vec![1u64; 32 << 20];
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t0 = Instant::now();
        // Integer lanes: the sum vectorizes, so memory is the limit, not the adder.
        let sum: u64 = v
            .par_chunks(1 << 15)
            .map(|c| c.iter().fold(0u64, |a, &x| a.wrapping_add(x)))
            .reduce(|| 0, u64::wrapping_add);
        std::hint::black_box(sum);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    (v.len() * 4) as f64 / best / 1e9
}
