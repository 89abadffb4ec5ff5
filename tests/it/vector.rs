//! The vector-output solver: residuals, the count sketch, training that lowers the loss, and
//! 10-class MNIST through the CLI on a fixture.

use super::common::*;
use super::mnist::write_fixture;
use relu_iht::cpu::CpuBackend;
use relu_iht::problem::data::Data;
use relu_iht::problem::model::{argmax_rows, residual, Loss, Select};
use relu_iht::problem::operator::Mode;
use relu_iht::solver::vector::{CountSketch, VectorConfig, VectorIht};
use std::sync::Arc;

#[test]
fn residuals_follow_their_definitions() {
    let yhat = [2.0f32, -1.0, 0.5, 1000.0, 999.0, -1000.0];
    let y = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0];
    let (r, loss) = residual(&yhat, &y, 3, Loss::Mse);
    for c in 0..6 {
        assert!((r[c] - (yhat[c] - y[c]) / 2.0).abs() < 1e-6);
    }
    let want: f64 = yhat
        .iter()
        .zip(&y)
        .map(|(&a, &b)| 0.5 * ((a - b) as f64).powi(2))
        .sum::<f64>()
        / 2.0;
    assert!((loss - want).abs() < 1e-9 * want);
    let (r, loss) = residual(&yhat, &y, 3, Loss::CrossEntropy);
    assert!(
        r.iter().all(|v| v.is_finite()) && loss.is_finite(),
        "max-subtracted softmax"
    );
    for row in r.chunks(3) {
        assert!(
            row.iter().sum::<f32>().abs() < 1e-6,
            "softmax − one-hot sums to zero"
        );
    }
    // Row 2: logits 1000, 999 → p = (e/(e+1), 1/(e+1)); target is the second class.
    let p1 = 1.0 / (std::f64::consts::E + 1.0);
    assert!((r[4] as f64 - (p1 - 1.0) / 2.0).abs() < 1e-6);
    assert_eq!(argmax_rows(&yhat, 3), vec![0, 0]);
}

#[test]
fn count_sketch_estimates_are_exact_without_collisions() {
    let mut sk = CountSketch::new(1000, 1_000_000, 3);
    for c in 0..10u32 {
        sk.add(c * 7919, c as f32 - 4.5);
        sk.add(c * 7919, 0.25);
    }
    for c in 0..10u32 {
        assert_eq!(sk.estimate(c * 7919), c as f32 - 4.25, "index {}", c * 7919);
    }
}

pub fn planted_vector(n: usize, d: usize, k: usize, seed: u64) -> (Arc<Data>, Vec<f32>) {
    let mut rng = rng(seed);
    let x = nonzero(&mut rng, n * d);
    let data = Arc::new(Data::from_columns(n, d, x.clone(), vec![0.0; n]).unwrap());
    // Targets from a 3-neuron teacher: relu(X u_j) v_jᵀ.
    let u = nonzero(&mut rng, 3 * d);
    let v = nonzero(&mut rng, 3 * k);
    let mut y = vec![0.0f32; n * k];
    for r in 0..n {
        for j in 0..3 {
            let z: f32 = (0..d).map(|i| x[i * n + r] * u[j * d + i]).sum();
            if z > 0.0 {
                for c in 0..k {
                    y[r * k + c] += z * v[j * k + c];
                }
            }
        }
    }
    (data, y)
}

#[test]
fn training_lowers_the_loss_for_both_selections() {
    let (data, y) = planted_vector(400, 6, 3, 50);
    for select in [Select::Magnitude, Select::Sketch] {
        let config = VectorConfig {
            s: 40,
            epochs: 60,
            batch_size: None,
            seed: 1,
            mode: Mode::SequentialConvex,
            loss: Loss::Mse,
            select,
            step: Some(0.5),
        };
        let mut solver =
            VectorIht::new(CpuBackend::new(), data.clone(), y.clone(), 3, 8, config).unwrap();
        let mut losses = Vec::new();
        solver.run(|_, loss| losses.push(loss)).unwrap();
        assert!(solver.x().nnz() <= 40);
        let (first, last) = (losses[1], *losses.last().unwrap());
        assert!(last < 0.5 * first, "{select:?}: loss {first} → {last}");
        // The prediction agrees with the loss the solver saw.
        let pred = solver.predict(data.clone()).unwrap();
        let (_, loss) = residual(&pred, &y, 3, Loss::Mse);
        assert!(
            loss.is_finite() && loss < first,
            "{select:?}: prediction loss {loss}"
        );
    }
}

#[test]
fn ten_class_mnist_cli_on_a_fixture() {
    let dir = std::env::temp_dir().join(format!("relu-iht-vector-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_fixture(&dir.join("mnist"), 10, 300, 100);
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_relu-iht"))
            .args([
                "mnist",
                "--classes",
                "all",
                "--data-dir",
                dir.to_str().unwrap(),
            ])
            .args([
                "--train-per-class",
                "30",
                "--test-per-class",
                "4",
                "--m",
                "20",
                "--s",
                "300",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--steps", "200", "--json", "--backend", "cpu"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["k"].as_u64(), v["n"].as_u64(), v["test_n"].as_u64()),
        (Some(10), Some(300), Some(40))
    );
    // Digit c lights column c: far above the 10% of chance.
    assert!(v["accuracy"].as_f64().unwrap() >= 0.5, "{v}");
    // Two layers: both fitted, the budget split between them.
    let out = run(&[
        "--steps",
        "100",
        "--json",
        "--backend",
        "cpu",
        "--layers",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["layers"].as_u64(), v["steps"].as_u64()),
        (Some(2), Some(200))
    );
    assert!(v["nnz"].as_u64().unwrap() <= 300, "{v}");
    assert!(v["accuracy"].as_f64().unwrap() >= 0.3, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn planted_vector_output_cli() {
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_relu-iht"))
            .args([
                "planted", "--k", "3", "--n", "600", "--d", "8", "--m", "4", "--s", "8", "--steps",
                "60",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--json", "--backend", "cpu"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["k"].as_u64(), v["nnz"].as_u64()), (Some(3), Some(8)));
    // Small s: the step size is 2 (SPEC §3) and the fit gets well below the zero predictor.
    assert_eq!(v["step_size"].as_f64(), Some(2.0));
    assert!(v["rel_error"].as_f64().unwrap() < 0.7, "{v}");
    if std::env::var("RELU_IHT_REQUIRE_GPU").as_deref() == Ok("1") {
        // The same fit on the WebGPU engine, one and two layers deep, against the CPU engine's.
        for layers in ["1", "2"] {
            let get = |backend: &str| -> serde_json::Value {
                let out = run(&["--json", "--backend", backend, "--layers", layers]);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                serde_json::from_slice(&out.stdout).unwrap()
            };
            let (g, c) = (get("gpu"), get("cpu"));
            assert!(g["backend"].as_str().unwrap().starts_with("gpu"), "{g}");
            assert!(g["peak_device_bytes"].as_u64().unwrap() > 0, "{g}");
            assert_eq!(
                (g["layers"].as_str(), g["nnz"].as_u64()),
                (c["layers"].as_str(), c["nnz"].as_u64())
            );
            let (eg, ec) = (
                g["rel_error"].as_f64().unwrap(),
                c["rel_error"].as_f64().unwrap(),
            );
            assert!(
                (eg - ec).abs() <= 0.02 * ec,
                "layers {layers}: gpu {eg} vs cpu {ec}"
            );
        }
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relu-iht"))
        .args(["planted", "--k", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--k = 0"));
}
