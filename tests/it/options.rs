//! The options beyond the paper (`inflate`, `refine`) never make the returned network fit worse:
//! on small planted and INR problems, both generator modes and several seeds, the training MSE of
//! a fit with either option or both is at most that of the plain fit, and the record of each
//! option agrees with the network returned.

use relu_iht::cpu::CpuBackend;
use relu_iht::problem::data::Data;
use relu_iht::problem::operator::{Generators, Mode, Operator};
use relu_iht::solver::scalar::{Iht, IhtConfig, Recovery};
use relu_iht::tasks::inr::{feature_data, FourierFeatures, Image};
use relu_iht::tasks::planted::{self, PlantedSpec, Teacher};
use std::sync::Arc;

fn fit(data: &Arc<Data>, m: usize, config: &IhtConfig) -> Recovery {
    let op = Operator::new(data.clone(), m, Generators::Random { seed: 0 }).unwrap();
    Iht::new(CpuBackend::new(), op, config.clone())
        .unwrap()
        .solve()
        .unwrap()
}

/// Training MSE of the returned network, computed from scratch on the host.
fn mse(rec: &Recovery, data: &Data) -> f64 {
    let yhat = rec.predict(data).unwrap();
    let sum: f64 = yhat
        .iter()
        .zip(data.y())
        .map(|(&p, &t)| (p as f64 - t as f64).powi(2))
        .sum();
    sum / data.n() as f64
}

fn check_options(what: &str, data: &Arc<Data>, m: usize, s: usize, steps: usize) {
    for mode in [Mode::SequentialConvex, Mode::Convex] {
        for seed in 0..3 {
            let mut base = IhtConfig::new(s, steps);
            (base.mode, base.seed) = (mode, seed);
            let plain = fit(data, m, &base);
            let f_plain = mse(&plain, data);
            // The recorded objective is the returned network's (f32 predictions: relative 1e-5).
            assert!((plain.polish.objective - f_plain).abs() <= 1e-5 * f_plain.max(1e-12));
            for (inflate, refine) in [(1.0, 30), (1.5, 0), (1.5, 20)] {
                let mut config = base.clone();
                (config.inflate, config.refine) = (inflate, refine);
                let rec = fit(data, m, &config);
                let f = mse(&rec, data);
                let tag = format!("{what} {mode:?} seed {seed} inflate {inflate} refine {refine}");
                assert!(rec.x.nnz() <= s, "{tag}: {} nonzeros", rec.x.nnz());
                // The plain fit is one of the candidates the options compare against, so the
                // result can only be better; the slack covers f32 predictions.
                assert!(
                    f <= f_plain * (1.0 + 1e-5) + 1e-12,
                    "{tag}: training MSE {f} above the plain fit's {f_plain}"
                );
                assert!(
                    (rec.polish.objective - f).abs() <= 1e-5 * f.max(1e-12),
                    "{tag}"
                );
                if refine > 0 {
                    let r = rec.polish.refine.as_ref().expect("refinement recorded");
                    assert!(r.kept == (r.after < r.before), "{tag}: {r:?}");
                }
                if inflate > 1.0 {
                    let i = rec.polish.inflate.as_ref().expect("inflation recorded");
                    assert!(
                        (i.before - f_plain).abs() <= 1e-6 * f_plain.max(1e-12),
                        "{tag}"
                    );
                    assert!(
                        rec.polish.refit.is_some(),
                        "{tag}: the pruned support is re-fitted"
                    );
                }
            }
        }
    }
}

#[test]
fn options_never_worsen_a_planted_fit() {
    let spec = PlantedSpec {
        n: 1500,
        d: 12,
        m: 10,
        s: 40,
        seed: 7,
        teacher: Teacher::Relu,
    };
    let problem = planted::generate(&spec, &mut CpuBackend::new()).unwrap();
    check_options("planted", &problem.data, spec.m, spec.s, 10);
}

#[test]
fn options_never_worsen_an_inr_fit() {
    // A 12 × 9 gray test pattern with an edge and a gradient.
    let (w, h) = (12, 9);
    let raw: Vec<f32> = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            if x > 6 {
                0.9
            } else {
                (x + y) as f32 / 20.0
            }
        })
        .collect();
    let image = Image::gray(w, h, &raw);
    let features = FourierFeatures::new(40, image.coord_dims(), 2.0, 0).unwrap();
    let data = Arc::new(feature_data(&image, &features, false).unwrap());
    check_options("inr", &data, 8, 60, 20);
}
