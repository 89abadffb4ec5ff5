//! Depth: hidden-unit rows (materialized and streamed agree), greedy layer-wise fitting of a
//! planted two-layer-deep network, and the CLI.

use super::common::*;
use relu_iht::cpu::CpuBackend;
use relu_iht::problem::data::{Data, InMemory, RowSource};
use relu_iht::problem::operator::Generators;
use relu_iht::solver::depth::Hidden;
use relu_iht::solver::scalar::IhtConfig;
use relu_iht::tasks::planted::{self, PlantedSpec, Teacher};
use std::sync::Arc;

/// The same rows without `whole()`, so consumers must stream.
struct Streamed(InMemory);

impl RowSource for Streamed {
    fn n(&self) -> usize {
        self.0.n()
    }
    fn d(&self) -> usize {
        self.0.d()
    }
    fn rows(&self, rows: &[usize]) -> relu_iht::Result<Data> {
        self.0.rows(rows)
    }
}

#[test]
fn hidden_rows_are_masked_relu_units_streamed_or_not() {
    let mut rng = rng(40);
    let (n, d, m) = (300, 7, 5);
    let data = data(&mut rng, n, d);
    let w = sparse(&mut rng, m * d, 12);
    let gens = Generators::Weights(w.clone());
    let whole = Hidden::new(Arc::new(InMemory(data.clone())), m, w.clone(), gens.clone()).unwrap();
    let streamed = Hidden::new(
        Arc::new(Streamed(InMemory(data.clone()))),
        m,
        w.clone(),
        gens,
    )
    .unwrap();
    assert!(whole.whole().is_some() && streamed.whole().is_none());
    let rows: Vec<usize> = (0..n).rev().step_by(7).collect();
    let (a, b) = (whole.rows(&rows).unwrap(), streamed.rows(&rows).unwrap());
    assert_eq!(a.xt(), b.xt());
    let dense = w.to_dense();
    for (k, &r) in rows.iter().enumerate() {
        for j in 0..m {
            let z: f64 = (0..d)
                .map(|i| data.at(r, i) as f64 * dense[j * d + i] as f64)
                .sum();
            let want = z.max(0.0);
            let got = a.at(k, j) as f64;
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "row {r} unit {j}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn two_layer_planted_network_is_fitted_greedily() {
    let spec = PlantedSpec {
        n: 3000,
        d: 12,
        m: 10,
        s: 40,
        seed: 4,
        teacher: Teacher::Relu,
    };
    let config = IhtConfig::new(40, 15);
    let (data, deep, scores) =
        planted::run_deep(&spec, 2, &config, CpuBackend::new(), |_, _| {}).unwrap();
    assert_eq!(deep.layers.len(), 2);
    assert_eq!(deep.steps(), 30);
    assert!(deep.nnz() <= 40 && deep.layers.iter().all(|r| r.x.nnz() <= 20));
    assert_eq!(data.n(), 3000);
    // The best constant predictor has rel_error ≥ the coefficient of variation of y; the fit
    // must do far better.
    assert!(scores.rel_error < 0.3, "rel_error {}", scores.rel_error);
    assert!(
        scores.weight_error.is_nan(),
        "no neuron matching across layers"
    );
}

#[test]
fn cli_layers() {
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_relu-iht"))
            .args([
                "planted",
                "--n",
                "800",
                "--d",
                "8",
                "--m",
                "6",
                "--s",
                "12",
                "--steps",
                "5",
                "--backend",
                "cpu",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--layers", "2", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["layers"], 2);
    assert_eq!(v["steps"], 10);
    assert!(v["weight_error"].is_null());
    let out = run(&["--layers", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--layers = 0"));
}
