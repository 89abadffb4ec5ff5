//! Engine properties, written once and run on every engine: the CPU engine always, the WebGPU
//! engine when an adapter is found (required in CI), and the CPU engine in f64. The adjoint dot test, the gradient phase's
//! selection against the dense formula, the support phase against the reference rules run on the
//! engine's own primitives, a whole solve against the CPU engine's, and the counters of what
//! reached the device.

use super::common::*;
use super::gpu::gpu;
use relu_iht::backend::{rules, Backend, Elem, SupportOps};
use relu_iht::cpu::{CpuBackend, WideBackend};
use relu_iht::gpu::{GpuBackend, GpuContext};
use relu_iht::problem::operator::{Generators, Mode, Operator};
use relu_iht::solver::scalar::{Iht, IhtConfig, Safeguards};
use relu_iht::tasks::planted::{self, PlantedSpec, Teacher};
use std::sync::Arc;

/// Runs `check` on every available engine (fresh ones for each call). The GPU engines share the
/// test binary's device, unless `own_device` (a test that counts what reaches the device must not
/// see other tests' work).
fn each_engine_on(own_device: bool, mut check: impl FnMut(&mut dyn FnMut() -> Engine)) {
    check(&mut || Engine::Cpu(CpuBackend::new()));
    check(&mut || Engine::Wide(WideBackend::new()));
    if let Some(shared) = gpu() {
        let ctx = if own_device {
            Arc::new(GpuContext::new(false).expect("a second device on the same adapter"))
        } else {
            shared
        };
        check(&mut || Engine::Gpu(GpuBackend::new(ctx.clone(), None)));
    }
}

fn each_engine(check: impl FnMut(&mut dyn FnMut() -> Engine)) {
    each_engine_on(false, check)
}

enum Engine {
    Cpu(CpuBackend),
    Gpu(GpuBackend),
    Wide(WideBackend),
}

macro_rules! on {
    ($engine:expr, $b:ident => $body:expr) => {
        match $engine {
            #[allow(unused_mut)] // not every check mutates the engine
            Engine::Cpu(mut $b) => $body,
            #[allow(unused_mut)] // not every check mutates the engine
            Engine::Gpu(mut $b) => $body,
            #[allow(unused_mut)] // not every check mutates the engine
            Engine::Wide(mut $b) => $body,
        }
    };
}

/// f32 values in an engine's element type.
fn elems<E: Elem>(v: &[f32]) -> Vec<E> {
    v.iter().map(|&x| E::from_f64(x as f64)).collect()
}

/// ⟨A_T u, v⟩ = ⟨u, A_Tᵀ v⟩ on random supports of both generator modes, awkward shapes.
fn dot_test<B: SupportOps>(be: &mut B, name: &str) {
    let mut rng = rng(40);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            let u = sparse(&mut rng, m * d, (m * d).div_ceil(2));
            let v = nonzero(&mut rng, n);
            be.prepare_support(&op, u.indices()).unwrap();
            let uv = elems::<B::Elem>(u.values());
            let au = be.forward(&op, &uv).unwrap();
            let au = be.download(&au).unwrap();
            let vb = be.upload(&v).unwrap();
            let atv = be.adjoint(&op, &vb).unwrap();
            let lhs: f64 = au.iter().zip(&v).map(|(&a, &b)| a as f64 * b as f64).sum();
            let rhs: f64 = u
                .values()
                .iter()
                .zip(&atv)
                .map(|(&a, &b)| a as f64 * b.to_f64())
                .sum();
            // Both sides are f32 sums of ≤ n·|T| products of magnitude ≤ 1.21.
            let tol = 1e-5 * 1.21 * (n * u.nnz()) as f64;
            assert!(
                (lhs - rhs).abs() <= tol,
                "{name} n={n} d={d} m={m}: ⟨Au, v⟩ = {lhs}, ⟨u, Aᵀv⟩ = {rhs}, tolerance {tol:e}"
            );
        }
    }
}

/// The gradient phase keeps the `keep` largest `|x − μ Aᵀ r|`, r = A_S x_S − y, as the dense
/// formula says (up to near-ties at the cut).
fn gradient_selection<B: Backend>(be: &mut B, name: &str) {
    let mut rng = rng(41);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data.clone(), m) {
            let md = m * d;
            // The iterate itself as generators, and an iterate other than the generators (with
            // weights on neurons whose block is zero).
            let mut xs = vec![sparse(&mut rng, md, md / 3)];
            if let Generators::Weights(w) = op.generators() {
                xs.push(w.clone());
            }
            for (x, keep) in xs
                .iter()
                .flat_map(|x| [(x, 1), (x, md.div_ceil(3)), (x, md)])
            {
                let phase = be.gradient_phase(&op, x, keep).unwrap();
                let mut r: Vec<f64> = op.dense_forward(x.to_dense().as_slice());
                for (ri, &y) in r.iter_mut().zip(data.y()) {
                    *ri -= y as f64;
                }
                let r32: Vec<f32> = r.iter().map(|&v| v as f32).collect();
                let grad = op.dense_adjoint(&r32);
                let xd = x.to_dense();
                let cand: Vec<f64> = (0..md).map(|c| xd[c] as f64 - phase.mu * grad[c]).collect();
                let z0 = &phase.z0;
                assert!(z0.nnz() <= keep, "{name}: {} > keep {keep}", z0.nnz());
                let mut order: Vec<f64> = cand.iter().map(|v| v.abs()).collect();
                order.sort_by(|a, b| b.total_cmp(a));
                let nonzero = order.iter().filter(|&&v| v > 0.0).count();
                assert_eq!(
                    z0.nnz(),
                    keep.min(nonzero),
                    "{name} n={n} m={m} keep={keep}"
                );
                // Every kept entry is at least as large as the cut, within the f32 error of
                // the gradient (a sum of n terms ≤ 1.21·‖r‖∞ in magnitude).
                let rmax = r.iter().map(|v| v.abs()).fold(0.0, f64::max);
                let tol = 1e-5 * (1.0 + phase.mu * 1.21 * n as f64 * rmax);
                let cut = order[z0.nnz() - 1];
                for (&c, &v) in z0.indices().iter().zip(z0.values()) {
                    assert!(
                        (v as f64 - cand[c as usize]).abs() <= tol,
                        "{name}: candidate {c}: actual {v}, expected {}",
                        cand[c as usize]
                    );
                    assert!(
                        (v.abs() as f64) >= cut - tol,
                        "{name}: kept {c} with |{v}| below the cut {cut}"
                    );
                }
            }
        }
    }
}

/// The engine's support phase equals the reference rules run on its own primitives: the same
/// line-search decisions, μ, loss and iterate, after 1, 2, … 10 inner steps. Once the loss is at
/// the f32 floor (1e-10 of ‖y‖² or of the starting loss, reached on the underdetermined shapes) the Armijo test compares
/// rounding noise, so later inner steps are not compared.
fn support_phase_follows_rules<B: Backend + SupportOps>(be: &mut B, name: &str) {
    let mut rng = rng(42);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        let yy = data.y().iter().map(|&v| v as f64 * v as f64).sum::<f64>();
        for op in operators(&mut rng, data, m) {
            let z0 = sparse(&mut rng, m * d, (m * d).div_ceil(4));
            // The scale of the losses: ‖y‖² or the starting loss, the larger.
            let z0v = elems::<B::Elem>(z0.values());
            let f0 = (rules::support_phase_on(be, &op, z0.indices(), &z0v, 1.0, 0).unwrap()).f;
            let floor = 1e-10 * yy.max(f0);
            for mu in [1e-3, 0.5, 40.0] {
                for inner in [1, 2, 3, 5, 7, 10] {
                    let got = be.support_phase(&op, &z0, mu, inner).unwrap();
                    let want =
                        rules::support_phase_on(be, &op, z0.indices(), &z0v, mu, inner).unwrap();
                    let case = format!("{name} n={n} d={d} m={m} μ={mu} inner={inner}");
                    assert_eq!(
                        (got.trials, got.resets),
                        (want.trials, want.resets),
                        "{case}: line search"
                    );
                    assert!(
                        (got.mu - want.mu).abs() <= 1e-6 * want.mu,
                        "{case}: μ {} vs {}",
                        got.mu,
                        want.mu
                    );
                    assert!(
                        // f32 residuals carry rounding at the scale of y: ~1e-9·‖y‖² on f.
                        (got.f - want.f).abs() <= 1e-4 * want.f + 1e-9 * yy,
                        "{case}: f {} vs {}",
                        got.f,
                        want.f
                    );
                    let w: Vec<f64> = want.z.iter().map(|&v| v.to_f64()).collect();
                    let scale = w.iter().map(|v| v.abs()).fold(1.0, f64::max);
                    assert_close(&format!("{case}: z"), &got.z, &w, 1e-4, scale);
                    if want.f <= floor {
                        break;
                    }
                }
            }
        }
    }
}

#[test]
fn every_engine_passes_the_dot_test() {
    each_engine(|make| {
        on!(make(), b => {
            let name = b.name();
            dot_test(&mut b, &name)
        })
    });
}

#[test]
fn every_engine_selects_the_dense_top_s() {
    each_engine(|make| {
        on!(make(), b => {
            let name = b.name();
            gradient_selection(&mut b, &name)
        })
    });
}

#[test]
fn every_engine_follows_the_support_rules() {
    each_engine(|make| {
        on!(make(), b => {
            let name = b.name();
            support_phase_follows_rules(&mut b, &name)
        })
    });
}

#[test]
fn every_engine_solves_as_the_cpu_engine() {
    let spec = PlantedSpec {
        n: 1200,
        d: 10,
        m: 9,
        s: 20,
        seed: 3,
        teacher: Teacher::Relu,
    };
    let mut config = IhtConfig::new(20, 12);
    config.mode = Mode::SequentialConvex;
    config.seed = 3;
    let (_, want, want_scores) = planted::run(&spec, &config, CpuBackend::new(), |_| {}).unwrap();
    each_engine(|make| {
        on!(make(), b => {
            let name = b.name();
            let (_, got, scores) = planted::run(&spec, &config, b, |_| {}).unwrap();
            assert_eq!(got.x.indices(), want.x.indices(), "{name}: same support");
            let (pg, pc) = (scores.psnr.min(140.0), want_scores.psnr.min(140.0));
            assert!((pg - pc).abs() < 0.5, "{name}: PSNR {pg} vs {pc}");
        })
    });
}

/// The default solver's safeguards on every engine: at the switch the plain run signs its
/// neurons and finds the concentration due; the concentrated run that follows keeps the
/// `ceil(s/n)` strongest neurons; the better run is kept. Each engine keeps the CPU engine's
/// support and signs and its PSNR within 0.5 dB, and the returned model is
/// `Σ_j σ_j relu(σ_j X w_j)`, checked against that formula in f64.
#[test]
fn every_engine_runs_the_safeguards() {
    let spec = PlantedSpec {
        n: 1200,
        d: 10,
        m: 24,
        s: 48,
        seed: 5,
        teacher: Teacher::Relu,
    };
    let config = IhtConfig {
        seed: 5,
        safeguards: Safeguards {
            signed: true,
            concentrate: Some(6),
        },
        ..IhtConfig::new(48, 12)
    };
    let (_, want, want_scores) = planted::run(&spec, &config, CpuBackend::new(), |_| {}).unwrap();
    each_engine(|make| {
        on!(make(), b => {
            let name = b.name();
            let (problem, got, scores) = planted::run(&spec, &config, b, |_| {}).unwrap();
            let outcome = got.polish.concentrate.clone().expect("the concentrated run ran");
            let switch = &got.history[2].safeguards;
            assert!(switch[0].starts_with("concentrate: "), "{name}: {switch:?}");
            assert!(switch.iter().any(|f| f.starts_with("signs: ")), "{name}: {switch:?}");
            assert!(got.history[..2].iter().all(|r| r.safeguards.is_empty()), "{name}");
            let live = got.x.neurons(spec.d).len();
            if outcome.kept {
                assert!(live <= 8, "{name}: {live} neurons after concentrating to 8");
            }
            assert!(!got.negated().is_empty(), "{name}: the seed signs some neuron −1");
            assert_eq!(got.x.indices(), want.x.indices(), "{name}: same support");
            assert_eq!(got.negated(), want.negated(), "{name}: same signs");
            let (pg, pc) = (scores.psnr.min(140.0), want_scores.psnr.min(140.0));
            assert!((pg - pc).abs() < 0.5, "{name}: PSNR {pg} vs {pc}");
            // The model by the formula: Σ_j σ_j relu(σ_j X w_j).
            let data = &problem.data;
            let mut formula = vec![0.0f64; spec.n];
            for j in got.x.neurons(spec.d) {
                let sign = if got.negated().binary_search(&j).is_ok() { -1.0 } else { 1.0 };
                for (r, out) in formula.iter_mut().enumerate() {
                    let z: f64 = (0..spec.d)
                        .map(|i| got.x.get(j * spec.d as u32 + i as u32) as f64 * data.column(i)[r] as f64)
                        .sum();
                    *out += sign * (sign * z).max(0.0);
                }
            }
            let pred = got.predict(data).unwrap();
            let err: f64 = pred.iter().zip(&formula).map(|(&p, &f)| (p as f64 - f).powi(2)).sum();
            let norm: f64 = formula.iter().map(|f| f * f).sum();
            assert!(err.sqrt() <= 1e-5 * norm.sqrt(), "{name}: prediction {err:e} off the formula");
        })
    });
}

/// A step reads back at most twice and submits at most four times; from the fourth step on it
/// creates no buffer and no bind group (GPU: steps 0–1 use random generators, step 2 is the first
/// whose gradient pass reads the support's masks); the CPU engine counts nothing.
#[test]
fn every_engine_keeps_the_step_on_its_device() {
    let spec = PlantedSpec {
        n: 3000,
        d: 20,
        m: 300,
        s: 60,
        seed: 4,
        teacher: Teacher::Relu,
    };
    each_engine_on(true, |make| {
        on!(make(), b => {
            let name = b.name();
            let problem = planted::generate(&spec, &mut b).unwrap();
            let op = Operator::new(problem.data.clone(), spec.m, Generators::Random { seed: 0 })
                .unwrap();
            let mut solver = Iht::new(b, op, IhtConfig::new(spec.s, 6)).unwrap();
            for step in 0..6 {
                let before = solver.backend().counters();
                solver.step().unwrap();
                let c = solver.backend().counters().since(&before);
                if name.starts_with("cpu") {
                    assert_eq!(c, Default::default(), "the CPU engines have no device");
                    continue;
                }
                assert!(c.readbacks <= 2, "{name} step {step}: {c:?}");
                assert!(c.submits <= 4, "{name} step {step}: {c:?}");
                if step >= 3 {
                    assert_eq!(c.buffers_created, 0, "{name} step {step}: {c:?}");
                    assert_eq!(c.bind_groups_created, 0, "{name} step {step}: {c:?}");
                }
            }
        })
    });
}

/// Masks kept across the random-generator steps of a run change nothing: every step's iterate
/// has the same bits as when the engine forgets them before each step; and on the GPU the second
/// random step, which reads the kept masks, sends fewer dispatches than when it forms them.
#[test]
fn kept_random_masks_give_the_same_steps() {
    let spec = PlantedSpec {
        n: 1500,
        d: 12,
        m: 40,
        s: 30,
        seed: 6,
        teacher: Teacher::Relu,
    };
    // Its own device: the dispatch counts must not see other tests' work.
    each_engine_on(true, |make| {
        let mut runs = Vec::new();
        for forget in [false, true] {
            on!(make(), b => {
                let name = b.name();
                let problem = planted::generate(&spec, &mut b).unwrap();
                let op = Operator::new(problem.data.clone(), spec.m, Generators::Random { seed: 0 })
                    .unwrap();
                let mut config = IhtConfig::new(spec.s, 4);
                config.mode = Mode::SequentialConvex;
                let mut solver = Iht::new(b, op, config).unwrap();
                let mut steps = Vec::new();
                for _ in 0..4 {
                    if forget {
                        solver.backend_mut().forget_kept();
                    }
                    let before = solver.backend().counters();
                    solver.step().unwrap();
                    let c = solver.backend().counters().since(&before);
                    let x = solver.x();
                    let bits: Vec<u32> = x.values().iter().map(|v| v.to_bits()).collect();
                    steps.push((x.indices().to_vec(), bits, c.dispatches));
                }
                runs.push((name, steps));
            })
        }
        let (name, kept) = &runs[0];
        let forgot = &runs[1].1;
        for (t, (a, b)) in kept.iter().zip(forgot).enumerate() {
            assert_eq!((&a.0, &a.1), (&b.0, &b.1), "{name} step {t}");
        }
        if name.starts_with("gpu") {
            assert!(
                kept[1].2 < forgot[1].2,
                "{name}: {} vs {}",
                kept[1].2,
                forgot[1].2
            );
        }
    });
}

/// The f64 engine gives the same bits whatever the number of threads: its sums run in a fixed
/// order and work is split only by output.
#[test]
fn the_f64_engine_gives_the_same_bits_on_any_thread_count() {
    let spec = PlantedSpec {
        n: 2100,
        d: 12,
        m: 10,
        s: 24,
        seed: 5,
        teacher: Teacher::Relu,
    };
    let mut config = IhtConfig::new(24, 10);
    config.seed = 5;
    let solve = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| planted::run(&spec, &config, WideBackend::new(), |_| {}).unwrap())
    };
    let (_, one, s1) = solve(1);
    let (_, three, s3) = solve(3);
    assert_eq!(one.x.indices(), three.x.indices());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(one.x.values()), bits(three.x.values()));
    assert_eq!(s1.psnr.to_bits(), s3.psnr.to_bits());
    assert!(s1.psnr > 20.0, "the solve itself works: {} dB", s1.psnr);
}
