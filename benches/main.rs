//! `cargo bench`: kernel-level timings of the CPU engine (best of several runs, printed as a
//! table). The end-to-end figures of the README come from `relu-iht bench`; this harness isolates
//! the pieces. `main` only lists the groups.

mod groups {
    use relu_iht::backend::SupportOps;
    use relu_iht::cpu::masked_gradient::gradient_topk;
    use relu_iht::cpu::CpuBackend;
    use relu_iht::problem::data::Data;
    use relu_iht::problem::operator::{Generators, Operator};
    use relu_iht::problem::topk::TopS;
    use relu_iht::tasks::planted::gaussian_inputs;
    use relu_iht::SparseVec;
    use std::sync::Arc;
    use std::time::Instant;

    fn best(reps: usize, mut f: impl FnMut()) -> f64 {
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    }

    fn operator(n: usize, d: usize, m: usize) -> Operator {
        let data = Data::from_columns(n, d, gaussian_inputs(n, d, 1), gaussian_inputs(n, 1, 2));
        Operator::new(
            Arc::new(data.expect("finite")),
            m,
            Generators::Random { seed: 3 },
        )
        .expect("valid")
    }

    /// The dense gradient pass (both GEMMs, masking, fused top-s) over all m neurons.
    pub fn gradient() {
        for (n, d, m) in [(20_000, 100, 256), (20_000, 100, 1024), (50_000, 100, 1000)] {
            let op = operator(n, d, m);
            let r = op.data().y().to_vec();
            let x = SparseVec::zeros(op.cols());
            let workers = rayon::current_num_threads();
            let secs = best(5, || {
                std::hint::black_box(gradient_topk(&op, &x, &r, 1.0, 1000, workers));
            });
            let gflops = 4.0 * (n * d * m) as f64 / secs / 1e9;
            println!(
                "gradient  n={n:>6} d={d:>4} m={m:>5}  {:>8.2} ms  {gflops:>6.1} GFLOP/s",
                secs * 1e3
            );
        }
    }

    /// `A_T z`, `A_Tᵀ r` and the fused inner-step pass (both, rows read once) on supports of s
    /// weights.
    pub fn support() {
        for (n, s) in [(50_000, 200), (50_000, 1000)] {
            let op = operator(n, 100, 1000);
            let mut be = CpuBackend::new();
            let r = op.data().y().to_vec();
            let t = gradient_topk(&op, &SparseVec::zeros(op.cols()), &r, 1.0, s, 2);
            be.prepare_support(&op, t.indices()).expect("support");
            let fwd = best(10, || {
                std::hint::black_box(be.forward(&op, t.values()).expect("forward"));
            });
            let adj = best(10, || {
                std::hint::black_box(be.adjoint(&op, &r).expect("adjoint"));
            });
            let pass = best(20, || {
                std::hint::black_box(be.forward_adjoint(&op, t.values(), false).expect("pass"));
            });
            let gb = 4.0 * (n * s) as f64 / 1e9;
            println!(
                "support   n={n:>6} s={s:>5}  forward {:>6.2} ms ({:>5.1} GB/s)  adjoint {:>6.2} ms ({:>5.1} GB/s)  pass {:>6.2} ms",
                fwd * 1e3,
                gb / fwd,
                adj * 1e3,
                gb / adj,
                pass * 1e3
            );
        }
    }

    /// Streaming top-s over 10⁷ candidates.
    pub fn topk() {
        let vals = gaussian_inputs(10_000_000, 1, 4);
        for keep in [1000, 100_000] {
            let secs = best(3, || {
                let mut top = TopS::new(keep);
                top.push_run(0, &vals);
                std::hint::black_box(top.finish(vals.len() as u64));
            });
            println!("topk      len=10^7 keep={keep:>6}  {:>8.2} ms", secs * 1e3);
        }
    }
}

fn main() {
    // `cargo bench -- NAME` runs the groups whose name contains NAME.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let groups: [(&str, fn()); 3] = [
        ("gradient", groups::gradient),
        ("support", groups::support),
        ("topk", groups::topk),
    ];
    for (name, run) in groups {
        if wanted(name) {
            run();
        }
    }
}
