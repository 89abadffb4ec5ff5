//! `--method imp` through the CLI and `relu-iht sweep`: records, resumable CSVs, heatmaps and the
//! phase-transition plot.

use super::mnist::write_fixture;
use std::path::Path;
use std::process::{Command, Output};

fn relu_iht(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relu-iht"))
        .args(args)
        .output()
        .unwrap()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("relu-iht-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn imp_method_reports_every_budget_from_one_pruning_run() {
    let dir = temp_dir("imp-cli");
    write_fixture(&dir.join("mnist"), 10, 300, 100);
    let d = dir.to_str().unwrap();
    let base = [
        "mnist",
        "--data-dir",
        d,
        "--train-per-class",
        "20",
        "--test-per-class",
        "10",
        "--m",
        "8",
        "--epochs",
        "20",
        "--batch-size",
        "10",
        "--lr",
        "0.01",
        "--method",
        "imp",
        "--json",
    ];
    let out = relu_iht(&[&base[..], &["--imp-budgets", "500,50", "--imp-retrain"]].concat());
    let recs = json_lines(&out);
    assert_eq!(recs.len(), 2, "one record per budget");
    let params = recs[0]["params"].as_u64().unwrap();
    assert_eq!(
        params,
        (100 * 8 + 8) as u64,
        "d·m + m·k weights, no biases (10 × 10 pixels)"
    );
    for (r, s) in recs.iter().zip([500u64, 50]) {
        assert_eq!(
            (r["method"].as_str(), r["s"].as_u64()),
            (Some("imp"), Some(s))
        );
        assert!(r["nnz"].as_u64().unwrap() <= s, "{r}");
        assert!(r["retrained"]["accuracy"].as_f64().is_some(), "{r}");
    }
    // The smaller budget needs more rounds; the training loss of every round is reported.
    assert!(recs[1]["round"].as_u64() > recs[0]["round"].as_u64());
    let losses = recs[0]["train_loss_per_round"].as_array().unwrap();
    assert!(losses.len() > recs[1]["round"].as_u64().unwrap() as usize);
    // The digits of the fixture light distinct pixels: the dense network separates them.
    assert!(
        recs[0]["dense"]["accuracy"].as_f64().unwrap() >= 0.9,
        "{}",
        recs[0]
    );
    // IMP on the planted task, and a one-line error for the GPU.
    let out = relu_iht(&[
        "planted", "--n", "400", "--d", "5", "--m", "4", "--s", "8", "--method", "imp", "--json",
    ]);
    let r = &json_lines(&out)[0];
    assert!(
        r["psnr"].as_f64().is_some() && r["nnz"].as_u64().unwrap() <= 8,
        "{r}"
    );
    let out = relu_iht(&[
        "planted",
        "--n",
        "400",
        "--method",
        "imp",
        "--backend",
        "gpu",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn csv_rows(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn sweep_writes_a_resumable_csv_and_heatmaps() {
    let dir = temp_dir("sweep");
    let out_dir = dir.to_str().unwrap();
    let args = [
        "sweep", "--task", "planted", "--method", "iht,imp", "--m", "1,3", "--s", "2,4", "--seeds",
        "0,1", "--out", out_dir, "--", "--n", "300", "--d", "4",
    ];
    let out = relu_iht(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = dir.join("planted.csv");
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 2 * 2 * 2 * 2, "methods × m × s × seeds");
    for png in [
        "planted-iht-L1.png",
        "planted-imp-L1.png",
        "planted-iht-vs-imp-L1.png",
    ] {
        let img = image::open(dir.join(png)).unwrap();
        assert!(img.width() > 300 && img.height() > 300, "{png}");
    }
    let one = image::open(dir.join("planted-iht-L1.png")).unwrap().width();
    let two = image::open(dir.join("planted-iht-vs-imp-L1.png"))
        .unwrap()
        .width();
    assert!(two > one + one / 2, "side by side");
    // Rerun: nothing to do. Drop a row (a run killed before it was written): only it reruns.
    let out = relu_iht(&args);
    assert!(out.status.success());
    assert_eq!(csv_rows(&csv), rows);
    let text = std::fs::read_to_string(&csv).unwrap();
    let kept: Vec<&str> = text.lines().take(text.lines().count() - 1).collect();
    std::fs::write(&csv, kept.join("\n") + "\n").unwrap();
    let out = relu_iht(&args);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 runs (1 cells) to do"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut again = csv_rows(&csv);
    let mut want = rows.clone();
    // Timings and memory differ between runs; the cell and its score do not.
    let cell = |r: &String| r.split(',').take(11).collect::<Vec<_>>().join(",");
    again.sort();
    want.sort();
    assert_eq!(
        again.iter().map(cell).collect::<Vec<_>>(),
        want.iter().map(cell).collect::<Vec<_>>()
    );
    // A torn last line (a run killed mid-append) is dropped with a warning and its cell reruns.
    let full = std::fs::read_to_string(&csv).unwrap();
    let torn = &full[..full.trim_end().len() - 5];
    std::fs::write(&csv, torn).unwrap();
    let out = relu_iht(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("torn last line") && err.contains("1 runs (1 cells) to do"),
        "{err}"
    );
    assert_eq!(csv_rows(&csv).len(), rows.len());
    // An empty CSV is a fresh start (header included), not a failure after the whole grid.
    std::fs::write(&csv, "").unwrap();
    let out = relu_iht(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(csv_rows(&csv).len(), rows.len());
    // A bad extra flag fails once, before any run, and leaves no folder of its own making.
    let fresh = dir.join("fresh");
    let bad = [
        "sweep",
        "--task",
        "planted",
        "--m",
        "1",
        "--s",
        "2",
        "--seeds",
        "0",
        "--out",
        fresh.to_str().unwrap(),
        "--",
        "--nope",
        "3",
    ];
    let out = relu_iht(&bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--nope"), "{err}");
    assert!(!fresh.exists(), "no empty results folder left");
    // A malformed CSV is a one-line error.
    std::fs::write(&csv, "task,method\nplanted,nonsense\n").unwrap();
    let out = relu_iht(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid CSV"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn phase_transition_counts_exact_recoveries() {
    let dir = temp_dir("phase");
    let args = [
        "sweep",
        "--vary",
        "n",
        "--n",
        "30,400",
        "--m",
        "3",
        "--s",
        "4",
        "--seeds",
        "0,1",
        "--teacher",
        "convex",
        "--out",
        dir.to_str().unwrap(),
        "--",
        "--d",
        "5",
    ];
    let out = relu_iht(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = csv_rows(&dir.join("phase-n.csv"));
    assert_eq!(rows.len(), 4);
    let err_at = |n: &str| -> Vec<f64> {
        rows.iter()
            .filter(|r| r.split(',').nth(4) == Some(n))
            .map(|r| r.split(',').nth(10).unwrap().parse().unwrap())
            .collect()
    };
    // Far more points than weights: the convex teacher is recovered exactly (by most seeds).
    let errs = [err_at("30"), err_at("400")].concat();
    assert!(errs.iter().all(|e| e.is_finite()), "{rows:?}");
    assert!(errs.iter().filter(|&&e| e < 1e-4).count() >= 2, "{rows:?}");
    let img = image::open(dir.join("phase-n.png")).unwrap();
    assert!(img.width() > 300);
    let _ = std::fs::remove_dir_all(&dir);
}
