//! The IMP baseline: the backward pass against finite differences of an f64 reference, masked
//! Adam, pruning counts, learning on planted tasks, determinism, budget selection, retraining,
//! and input validation.

use super::common::*;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use relu_iht::imp::{imp, prune_count, Adam, ImpConfig, ImpResult, Mlp, RoundReport};
use relu_iht::problem::data::Data;
use relu_iht::problem::model::{argmax_rows, Loss};

/// Gaussian inputs (n × d) as a data set with zero scalar targets.
fn gaussian(rng: &mut impl Rng, n: usize, d: usize) -> Data {
    let xt = (0..n * d).map(|_| StandardNormal.sample(rng)).collect();
    Data::from_columns(n, d, xt, vec![0.0; n]).unwrap()
}

/// Loss of `mlp` on `data` in f64 with plain loops: the reference the gradient check
/// differentiates numerically.
fn reference_loss(mlp: &Mlp, w: &[f64], data: &Data, y: &[f32], loss: Loss) -> f64 {
    let widths = mlp.widths();
    let k = widths[widths.len() - 1];
    let mut total = 0.0;
    for r in 0..data.n() {
        let mut h: Vec<f64> = (0..data.d()).map(|i| data.at(r, i) as f64).collect();
        let mut off = 0;
        for l in 0..mlp.layers() {
            let (fi, fo) = (widths[l], widths[l + 1]);
            let mut z: Vec<f64> = (0..fo)
                .map(|o| (0..fi).map(|i| w[off + o * fi + i] * h[i]).sum())
                .collect();
            if l + 1 < mlp.layers() {
                z.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            off += fi * fo;
            h = z;
        }
        let t = &y[r * k..(r + 1) * k];
        total += match loss {
            Loss::Mse => (0..k)
                .map(|c| 0.5 * (h[c] - t[c] as f64).powi(2))
                .sum::<f64>(),
            Loss::CrossEntropy => {
                let max = h.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + h.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                (0..k).map(|c| t[c] as f64 * (lse - h[c])).sum::<f64>()
            }
        };
    }
    total / data.n() as f64
}

#[test]
fn backward_matches_finite_differences() {
    let mut rng = rng(70);
    for (hidden, loss) in [
        (1, Loss::Mse),
        (2, Loss::Mse),
        (1, Loss::CrossEntropy),
        (2, Loss::CrossEntropy),
    ] {
        let (n, d, m, k) = (9, 4, 5, 3);
        let data = gaussian(&mut rng, n, d);
        let y: Vec<f32> = match loss {
            Loss::Mse => nonzero(&mut rng, n * k),
            Loss::CrossEntropy => (0..n * k)
                .map(|e| (e % k == (e / k) % k) as u8 as f32)
                .collect(),
        };
        let mut widths = vec![d];
        widths.extend(std::iter::repeat_n(m, hidden));
        widths.push(k);
        let mlp = Mlp::init(&widths, 3).unwrap();
        let (value, grad) = mlp.loss_and_gradient(&data, &y, loss).unwrap();
        let w: Vec<f64> = mlp.weights().iter().map(|&v| v as f64).collect();
        let want = reference_loss(&mlp, &w, &data, &y, loss);
        // f32 forward of sums of ≤ 5 terms: relative error ~1e-6.
        assert!(
            (value - want).abs() <= 1e-5 * want.abs().max(1.0),
            "loss {value} vs {want}"
        );
        // Central differences in f64 (step 1e-6: truncation ~1e-12, rounding ~1e-10); a ReLU kink
        // within 1e-6 of a pre-activation is vanishingly unlikely for Gaussian data.
        let h = 1e-6;
        let fd: Vec<f64> = (0..w.len())
            .map(|p| {
                let (mut plus, mut minus) = (w.clone(), w.clone());
                plus[p] += h;
                minus[p] -= h;
                (reference_loss(&mlp, &plus, &data, &y, loss)
                    - reference_loss(&mlp, &minus, &data, &y, loss))
                    / (2.0 * h)
            })
            .collect();
        let scale = fd.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        assert!(scale > 1e-3, "a gradient worth checking");
        // f32 GEMMs over ≤ 9 rows: 1e-4 of the largest entry is ~100× the expected error.
        assert_close(
            &format!("gradient L={hidden} {loss:?}"),
            &grad,
            &fd,
            1e-4,
            scale,
        );
    }
}

#[test]
fn adam_follows_pytorch_and_keeps_pruned_weights_zero() {
    let mut adam = Adam::new(4, 1e-3);
    let mut w = [0.5f32, 0.0, -0.25, 1.0];
    let mask = [1.0f32, 0.0, 1.0, 1.0];
    // First step: m̂ = g, v̂ = g², so each live weight moves by lr·sign(g) (up to ε).
    let mut g = [2.0f32, 7.0, -0.5, 0.0];
    adam.step(&mut w, &mut g, &mask);
    assert_eq!(g[1], 0.0, "masked gradient");
    assert_eq!(w[1], 0.0, "pruned weight stays zero");
    assert!((w[0] - 0.499).abs() < 1e-7, "{}", w[0]);
    assert!((w[2] - -0.249).abs() < 1e-7, "{}", w[2]);
    assert_eq!(w[3], 1.0, "zero gradient, zero moments: no move");
    // Second step, weight 0 by the formula: m = 0.9·0.2 + 0.1·1, v = 0.999·0.004 + 0.001·1.
    let mut g = [1.0f32, 7.0, 0.0, 0.0];
    adam.step(&mut w, &mut g, &mask);
    let (m, v) = (0.9 * 0.2 + 0.1 * 1.0, 0.999 * 0.004 + 0.001 * 1.0);
    let (bc1, bc2) = (1.0 - 0.9f64 * 0.9, 1.0 - 0.999f64 * 0.999);
    let want = 0.499 - 1e-3 * (m / bc1) / ((v / bc2).sqrt() + 1e-8);
    assert!((w[0] as f64 - want).abs() < 1e-6, "{} vs {want}", w[0]);
    assert_eq!(w[1], 0.0);
    adam.reset();
    let mut g = [0.0f32; 4];
    let before = w;
    adam.step(&mut w, &mut g, &mask);
    assert_eq!(w, before, "reset moments: a zero gradient moves nothing");
}

#[test]
fn prune_counts_are_ten_percent_of_the_remaining() {
    assert_eq!(prune_count(100, 0.1), 10);
    assert_eq!(prune_count(25, 0.1), 2, "2.5 rounds to even");
    assert_eq!(prune_count(35, 0.1), 4, "3.5 rounds to even");
    assert_eq!(prune_count(4, 0.1), 1, "at least one per round");
    assert_eq!(prune_count(1, 0.5), 1);
}

/// Planted regression: y = relu(X U) V with a 3-neuron teacher, Gaussian X, k outputs.
fn teacher(rng: &mut impl Rng, n: usize, d: usize, k: usize) -> (Data, Vec<f32>) {
    let data = gaussian(rng, n, d);
    let t = Mlp::init(&[d, 3, k], rng.random()).unwrap();
    let y = t.predict(&data).unwrap();
    // Scale targets to unit RMS so the loss thresholds below mean the same for any draw.
    let rms = (y.iter().map(|v| v * v).sum::<f32>() / y.len() as f32).sqrt();
    (data, y.iter().map(|v| v / rms).collect())
}

fn run(
    data: &Data,
    y: &[f32],
    config: &ImpConfig,
    budgets: &[usize],
) -> (ImpResult, Vec<RoundReport>) {
    let mut seen = Vec::new();
    let result = imp(data, y, config, budgets, |r| seen.push(r.clone())).unwrap();
    (result, seen)
}

#[test]
fn dense_round_learns_a_planted_teacher() {
    let mut rng = rng(71);
    let (data, y) = teacher(&mut rng, 800, 8, 2);
    for hidden in [1, 2] {
        let config = ImpConfig {
            hidden_layers: hidden,
            epochs: 40,
            batch_size: Some(40),
            lr: 1e-2,
            ..ImpConfig::new(32, 2, Loss::Mse)
        };
        let budgets = [Mlp::init(&config.widths(8), 0).unwrap().params()];
        let (result, seen) = run(&data, &y, &config, &budgets);
        assert_eq!(seen.len(), 1, "a budget ≥ all weights is met by round 0");
        let losses = &seen[0].epoch_losses;
        assert!(
            losses[losses.len() - 1] < 0.2 * losses[0],
            "L={hidden}: {losses:?}"
        );
        // Unit-RMS targets: MSE/2 below 0.01 is a relative error under ~15%.
        let fit = result.dense.loss(&data, &y, Loss::Mse).unwrap();
        assert!(fit < 0.01, "L={hidden}: dense loss {fit}");
        // Same weights, different row blocks: equal up to f32 summation order.
        let logged = seen[0].train_loss;
        assert!((fit - logged).abs() <= 1e-5 * fit, "{fit} vs {logged}");
    }
}

#[test]
fn dense_round_classifies_a_separable_problem() {
    let mut rng = rng(72);
    let (n, d) = (600, 10);
    let data = gaussian(&mut rng, n, d);
    let u: Vec<f32> = nonzero(&mut rng, d);
    let labels: Vec<usize> = (0..n)
        .map(|r| ((0..d).map(|i| data.at(r, i) * u[i]).sum::<f32>() > 0.0) as usize)
        .collect();
    let y: Vec<f32> = labels
        .iter()
        .flat_map(|&c| [(c == 0) as u8 as f32, (c == 1) as u8 as f32])
        .collect();
    let config = ImpConfig {
        epochs: 20,
        batch_size: Some(30),
        lr: 1e-2,
        ..ImpConfig::new(16, 2, Loss::CrossEntropy)
    };
    let (result, seen) = run(&data, &y, &config, &[1_000_000]);
    let losses = &seen[0].epoch_losses;
    assert!(losses[losses.len() - 1] < 0.3 * losses[0], "{losses:?}");
    let pred = argmax_rows(&result.dense.predict(&data).unwrap(), 2);
    let correct = pred.iter().zip(&labels).filter(|(a, b)| a == b).count();
    assert!(correct as f64 >= 0.97 * n as f64, "accuracy {correct}/{n}");
}

#[test]
fn rounds_prune_ten_percent_and_budgets_pick_the_first_round_below() {
    let mut rng = rng(73);
    let (data, y) = teacher(&mut rng, 120, 5, 2);
    let config = ImpConfig {
        hidden_layers: 2,
        epochs: 2,
        batch_size: Some(50),
        retrain: true,
        ..ImpConfig::new(6, 2, Loss::Mse)
    };
    let total = 5 * 6 + 6 * 6 + 6 * 2;
    let budgets = [60, 70, 40, 61, 55];
    let (result, seen) = run(&data, &y, &config, &budgets);
    assert_eq!(seen, result.rounds);
    let mut trained = total;
    for r in &result.rounds[..result.rounds.len() - 1] {
        assert_eq!(r.trained, trained, "round {}", r.round);
        let kept = r.kept.unwrap();
        let pruned = trained - kept;
        let tenth = trained as f64 / 10.0;
        assert!(
            pruned == tenth.floor() as usize || pruned == tenth.ceil() as usize,
            "round {}: pruned {pruned} of {trained}",
            r.round
        );
        trained = kept;
    }
    let last = result.rounds.last().unwrap();
    assert_eq!(last.kept, None, "a final round only retrains");
    for (pick, &s) in result.picks.iter().zip(&budgets) {
        let first = result
            .rounds
            .iter()
            .position(|r| r.kept.is_some_and(|k| k <= s));
        assert_eq!(Some(pick.round), first, "budget {s}");
        assert_eq!(pick.budget, s);
        assert_eq!(Some(pick.kept), result.rounds[pick.round].kept);
        assert!(pick.pruned.nonzeros() <= pick.kept && pick.kept <= s);
        // The retrained model trained under the pick's mask: its zeros include the pruned ones,
        // and it did move away from the init.
        let retrained = pick.retrained.as_ref().expect("retrain was asked for");
        for (p, (&a, &b)) in pick
            .pruned
            .weights()
            .iter()
            .zip(retrained.weights())
            .enumerate()
        {
            assert!(
                a != 0.0 || b == 0.0,
                "budget {s}: weight {p} pruned but retrained to {b}"
            );
        }
        assert!(retrained.nonzeros() > 0);
    }
    // Rounds stop as soon as the smallest budget is met, plus one retraining round.
    let deepest = result.picks.iter().map(|p| p.round).max().unwrap();
    assert_eq!(result.rounds.len(), deepest + 2);
    // Retraining at round r's mask is round r + 1's training, which round r + 1's pick prunes.
    // Kept counts 78 → 70 → 63 → 57 → 51: s = 60 is met in round 2, s = 55 in round 3.
    let (r55, r60) = (&result.picks[4], &result.picks[0]);
    assert_eq!((r60.round, r55.round), (2, 3));
    let retrained = r60.retrained.as_ref().unwrap();
    for (&a, &b) in r55.pruned.weights().iter().zip(retrained.weights()) {
        assert!(a == 0.0 || a == b, "pruned {a}, retrained {b}");
    }
}

#[test]
fn same_seed_same_result_other_seed_other_result() {
    let mut rng = rng(74);
    let (data, y) = teacher(&mut rng, 90, 4, 3);
    let config = ImpConfig {
        epochs: 3,
        batch_size: Some(32),
        retrain: true,
        seed: 11,
        ..ImpConfig::new(5, 3, Loss::CrossEntropy)
    };
    let labels: Vec<f32> = argmax_rows(&y, 3)
        .iter()
        .flat_map(|&c| (0..3).map(move |j| (j == c) as u8 as f32))
        .collect();
    let (a, _) = run(&data, &labels, &config, &[20, 30]);
    let (b, _) = run(&data, &labels, &config, &[20, 30]);
    assert_eq!(a.rounds, b.rounds);
    assert_eq!(a.dense, b.dense);
    for (p, q) in a.picks.iter().zip(&b.picks) {
        assert_eq!(p.pruned, q.pruned);
        assert_eq!(p.retrained, q.retrained);
    }
    let other = ImpConfig { seed: 12, ..config };
    let (c, _) = run(&data, &labels, &other, &[20, 30]);
    assert_ne!(a.dense, c.dense);
}

#[test]
fn bad_inputs_are_errors_naming_the_value() {
    let mut rng = rng(75);
    let data = gaussian(&mut rng, 10, 3);
    let y = vec![0.5f32; 20];
    let ok = ImpConfig::new(4, 2, Loss::Mse);
    let fails = |config: &ImpConfig, y: &[f32], budgets: &[usize], want: &str| {
        let err = imp(&data, y, config, budgets, |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err:?} should name {want:?}");
        assert!(!err.contains('\n'), "one line: {err:?}");
    };
    fails(&ImpConfig { m: 0, ..ok.clone() }, &y, &[5], "m = 0");
    fails(&ImpConfig { k: 0, ..ok.clone() }, &[], &[5], "k = 0");
    fails(
        &ImpConfig {
            hidden_layers: 0,
            ..ok.clone()
        },
        &y,
        &[5],
        "layers = 0",
    );
    fails(
        &ImpConfig {
            epochs: 0,
            ..ok.clone()
        },
        &y,
        &[5],
        "epochs = 0",
    );
    fails(
        &ImpConfig {
            batch_size: Some(0),
            ..ok.clone()
        },
        &y,
        &[5],
        "batch-size = 0",
    );
    fails(
        &ImpConfig {
            batch_size: Some(11),
            ..ok.clone()
        },
        &y,
        &[5],
        "batch-size = 11",
    );
    fails(
        &ImpConfig {
            lr: f64::NAN,
            ..ok.clone()
        },
        &y,
        &[5],
        "lr = NaN",
    );
    fails(
        &ImpConfig {
            prune_fraction: 1.0,
            ..ok.clone()
        },
        &y,
        &[5],
        "prune-fraction = 1",
    );
    fails(
        &ImpConfig::new(4, 1, Loss::CrossEntropy),
        &y[..10],
        &[5],
        "k = 1",
    );
    fails(&ok, &y, &[], "budgets");
    fails(&ok, &y, &[5, 0], "s = 0");
    fails(&ok, &y[..19], &[5], "targets");
    let mut bad = y.clone();
    bad[7] = f32::INFINITY;
    fails(
        &ok,
        &bad,
        &[5],
        "non-finite value inf in targets at index 7",
    );
    let mlp = Mlp::init(&[4, 2, 1], 0).unwrap();
    let err = mlp.predict(&data).unwrap_err().to_string();
    assert!(err.contains("expected 4, got 3"), "{err}");
}

#[test]
fn predictions_do_not_depend_on_row_blocks() {
    // 4100 rows cross the 4096-row prediction block; single rows are blocks of their own.
    let mut rng = rng(76);
    let data = gaussian(&mut rng, 4100, 3);
    let mlp = Mlp::init(&[3, 7, 7, 2], 9).unwrap();
    let all = mlp.predict(&data).unwrap();
    assert_eq!(all.len(), 4100 * 2);
    for r in [0, 1, 4095, 4096, 4099] {
        let one = mlp.predict(&data.gather_rows(&[r])).unwrap();
        let want: Vec<f64> = one.iter().map(|&v| v as f64).collect();
        // Sums of ≤ 7 products in f32, possibly in another order: 1e-5 of the row's scale.
        let scale = want.iter().fold(1e-3f64, |a, v| a.max(v.abs()));
        assert_close(
            &format!("row {r}"),
            &all[2 * r..2 * r + 2],
            &want,
            1e-5,
            scale,
        );
    }
}
