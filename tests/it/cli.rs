//! The binary: the JSON contract of SPEC §7, determinism across runs, and one-line errors with
//! exit code 2 for bad input.

use std::process::{Command, Output};

fn relu_iht(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relu-iht"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// The binary with wgpu limited to a backend that has no adapter on Linux.
fn relu_iht_without_gpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relu-iht"))
        .args(args)
        .env("WGPU_BACKEND", "dx12")
        .output()
        .expect("binary runs")
}

const SMALL: &[&str] = &[
    "planted", "--n", "600", "--d", "8", "--m", "6", "--s", "12", "--steps", "6",
];

#[test]
fn planted_json_has_the_contract_fields() {
    let out = relu_iht(&[SMALL, &["--json", "--backend", "cpu"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line per run: {stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for key in [
        "task",
        "method",
        "backend",
        "n",
        "d",
        "m",
        "s",
        "k",
        "layers",
        "steps",
        "seed",
        "nnz",
        "seconds",
        "peak_host_bytes",
        "peak_device_bytes",
        "psnr",
        "rel_error",
        "weight_error",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["task"], "planted");
    assert_eq!(v["backend"], "cpu");
    assert_eq!(v["n"], 600);
    assert_eq!(v["nnz"], 12);
    assert!(v["peak_host_bytes"].as_u64().unwrap() > 1 << 20);
}

#[test]
fn same_command_gives_bitwise_identical_metrics() {
    let metrics = || {
        let out = relu_iht(&[SMALL, &["--json", "--seed", "7"]].concat());
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        ["psnr", "rel_error", "weight_error", "nnz"].map(|k| v[k].to_string())
    };
    assert_eq!(metrics(), metrics());
}

#[test]
fn gpu_without_adapter_is_a_one_line_error_and_auto_falls_back() {
    let out = relu_iht_without_gpu(&[SMALL, &["--backend", "gpu"]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--backend = gpu") && stderr.contains("no usable GPU adapter"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let out = relu_iht_without_gpu(&[SMALL, &["--backend", "auto", "--json"]].concat());
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backend"], "cpu");
    assert!(
        String::from_utf8_lossy(&out.stderr).is_empty(),
        "--json keeps stderr quiet"
    );
}

#[test]
fn gpu_run_reports_device_memory() {
    if std::env::var("RELU_IHT_REQUIRE_GPU").as_deref() != Ok("1") {
        eprintln!("skipping: set RELU_IHT_REQUIRE_GPU=1 to run the CLI on the GPU");
        return;
    }
    let out = relu_iht(
        &[
            SMALL,
            &["--backend", "gpu", "--json", "--device-memory", "64K"],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["backend"].as_str().unwrap().starts_with("gpu"), "{v}");
    assert!(v["peak_device_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["nnz"], 12);
}

#[test]
fn bad_input_gives_one_line_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["planted", "--s", "0"], "s = 0"),
        (
            &["planted", "--backend", "gpu", "--precision", "f64"],
            "--precision = f64",
        ),
        (
            &["planted", "--n", "100", "--d", "2", "--m", "3", "--s", "7"],
            "s = 7",
        ),
        (&["planted", "--n", "0"], "n = 0"),
        (&["planted", "--d", "0"], "d = 0"),
        (&["planted", "--m", "0"], "m = 0"),
        (
            &[
                "planted",
                "--n",
                "50",
                "--batch-size",
                "51",
                "--epochs",
                "1",
            ],
            "batch-size = 51",
        ),
        (&["planted", "--steps", "0"], "steps = 0"),
        (&["planted", "--inflate", "NaN"], "inflate = NaN"),
        (&["planted", "--device-memory", "0"], "--device-memory"),
        (&["planted", "--device-memory", "12Q"], "unknown unit"),
        (&["planted", "--layers", "2", "--s", "1"], "--layers = 2"),
        (&["planted", "--m", "100000000", "--d", "100"], "m·d"),
        (&["--threads", "0", "planted"], "--threads = 0"),
        (&["planted", "--m", "banana"], "banana"),
    ];
    for (args, needle) in cases {
        let out = relu_iht(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected '{needle}' in '{stderr}'"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        if !needle.contains("banana") {
            assert_eq!(
                stderr.trim().lines().count(),
                1,
                "{args:?}: one line: {stderr}"
            );
        }
    }
}

/// The bench's JSON lines, the host line (last) checked and removed.
fn bench_rows(extra: &[&str]) -> (Vec<serde_json::Value>, String) {
    let mut args = vec![
        "bench",
        "--n",
        "700",
        "--d",
        "6",
        "--m",
        "5,9",
        "--s",
        "8",
        "--steps",
        "2",
        "--repeats",
        "1",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = relu_iht(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let mut rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The last line: the host's streaming read rate and the CPU kernels' instruction set.
    let host = rows.pop().unwrap();
    assert_eq!(host["task"], "bench-host", "{host}");
    assert!(host["host_read_gbps"].as_f64().unwrap() > 0.0, "{host}");
    assert!(host["cpu_kernels"].is_string(), "{host}");
    for r in &rows {
        for key in [
            "gradient_gflops",
            "mask_seconds",
            "support_gbps",
            "support_pass_memory_gbps",
            "step_ms",
            "psnr",
            "peak_device_bytes",
        ] {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
        if r["backend"] != "cpu" {
            assert!(r["solve_ratio_to_cpu"].as_f64().unwrap() > 0.0);
            assert!(r["peak_device_bytes"].as_u64().unwrap() > 0);
        }
    }
    assert_eq!(rows[0]["backend"], "cpu");
    (rows, stderr)
}

#[test]
fn bench_prints_one_row_per_backend() {
    let gpu = std::env::var("RELU_IHT_REQUIRE_GPU").as_deref() == Ok("1");
    // auto: the CPU, and a hardware GPU only; with software adapters alone it says how to add them.
    let (rows, stderr) = bench_rows(&[]);
    let cpu_rows = rows.iter().filter(|r| r["backend"] == "cpu").count();
    assert_eq!(cpu_rows, 2);
    let hardware = relu_iht::gpu::context::adapters()
        .iter()
        .any(|a| a.is_hardware());
    if !hardware {
        assert_eq!(rows.len(), 2, "no GPU rows without a hardware adapter");
        assert!(stderr.contains("--backend gpu"), "{stderr}");
    }
    // gpu: the CPU rows as the baseline, and the GPU engine on any adapter.
    if gpu {
        let (rows, _) = bench_rows(&["--backend", "gpu", "--peak-gflops", "5000"]);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows.iter().filter(|r| r["backend"] == "cpu").count(), 2);
        for r in &rows {
            assert_eq!(r["peak_gflops"].as_f64(), Some(5000.0), "{r}");
            if r["backend"] == "cpu" {
                assert!(r.get("gradient_peak_fraction").is_none(), "{r}");
                assert_eq!(r["readback_wait_ms"].as_f64(), Some(0.0), "{r}");
            } else {
                // The fraction of the stated peak, by timestamps or wall time: a small positive
                // number on Lavapipe.
                let f = r["gradient_peak_fraction"].as_f64().unwrap();
                assert!(f > 0.0 && f < 1.0, "{r}");
                // Every readback waits on the device for some time.
                assert!(r["readback_wait_ms"].as_f64().unwrap() > 0.0, "{r}");
            }
        }
        // Device time per kernel from timestamp queries (Lavapipe has them), for every kernel a
        // solve dispatches.
        let has = relu_iht::gpu::GpuContext::new(false)
            .unwrap()
            .has_timestamps();
        for r in rows.iter().filter(|r| r["backend"] != "cpu") {
            if !has {
                assert!(r.get("kernel_ms").is_none(), "{r}");
                continue;
            }
            let k = r["kernel_ms"]
                .as_object()
                .unwrap_or_else(|| panic!("kernel_ms in {r}"));
            assert!(
                k.keys().any(|name| name.starts_with("relu_mask.")),
                "a relu_mask entry in {r}"
            );
            // The gradient's split products: `main` on a GPU, `lanes` (or `lanes_sg`) on a CPU
            // adapter.
            assert!(
                [
                    "masked_gradient.main",
                    "masked_gradient.lanes",
                    "masked_gradient.lanes_sg"
                ]
                .iter()
                .any(|e| k
                    .get(*e)
                    .and_then(|v| v.as_f64())
                    .is_some_and(|ms| ms > 0.0)),
                "a masked_gradient split entry in {r}"
            );
            // The support product's entry for GPUs or for CPU adapters.
            assert!(
                ["support_forward.main", "support_forward.lanes"]
                    .iter()
                    .any(|e| k.get(*e).and_then(|v| v.as_f64()).is_some()),
                "a support_forward entry in {r}"
            );
            for kernel in [
                "masked_gradient.reduce",
                "support_adjoint.main",
                "armijo.trials",
                "armijo.decide",
                "armijo.update",
                "topk.histogram",
            ] {
                let ms = k.get(kernel).and_then(|v| v.as_f64());
                assert!(ms.is_some_and(|ms| ms >= 0.0), "{kernel} in {r}");
            }
            assert!(
                k.values().map(|v| v.as_f64().unwrap()).sum::<f64>() > 0.0,
                "{r}"
            );
            let g = r["gradient_kernel_gflops"].as_f64().unwrap();
            let f = r["gradient_peak_fraction"].as_f64().unwrap();
            assert!((f - g / 5000.0).abs() <= 1e-12 * f.max(1.0), "{r}");
        }
    }
    let out = relu_iht(&["bench", "--peak-gflops=0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--peak-gflops"),
        "{out:?}"
    );
}

#[test]
fn profile_prints_the_kernel_table_at_the_end() {
    let run = |backend: &str| {
        let out = relu_iht(&[
            "planted",
            "--backend",
            backend,
            "--n",
            "600",
            "--d",
            "5",
            "--m",
            "6",
            "--s",
            "6",
            "--steps",
            "3",
            "--quiet",
            "--profile",
        ]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    // The CPU engine says it has nothing to time instead of ignoring the flag.
    assert!(run("cpu").contains("profile: the CPU engine"));
    if std::env::var("RELU_IHT_REQUIRE_GPU").as_deref() == Ok("1") {
        let has = relu_iht::gpu::GpuContext::new(false)
            .unwrap()
            .has_timestamps();
        let stderr = run("gpu");
        if !has {
            assert!(stderr.contains("no timestamp queries"), "{stderr}");
            return;
        }
        assert!(
            stderr.contains("profile: device time by kernel"),
            "{stderr}"
        );
        for kernel in ["masked_gradient.", "support_forward.", "armijo.trials"] {
            let line = stderr
                .lines()
                .find(|l| l.trim_start().starts_with(kernel))
                .unwrap_or_else(|| panic!("{kernel} in {stderr}"));
            let dispatches: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
            assert!(dispatches > 0, "{line}");
        }
        assert!(stderr.contains("readbacks"), "{stderr}");
    }
}

#[test]
fn devices_lists_adapters() {
    let out = relu_iht(&["devices", "--json"]);
    assert!(out.status.success());
    let lines = String::from_utf8(out.stdout).unwrap();
    if std::env::var("RELU_IHT_REQUIRE_GPU").as_deref() == Ok("1") {
        let first: serde_json::Value =
            serde_json::from_str(lines.lines().next().expect("an adapter")).unwrap();
        assert!(
            first["max_storage_buffer_binding_size"].as_u64().unwrap() > 0,
            "{first}"
        );
    }
}

/// A fresh folder under the system's temporary folder.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("relu-iht-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_one_line_exit_2(out: &Output, names: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(names), "{err} should name {names}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn flags_that_would_do_nothing_are_refused() {
    let ck = scratch("noop").join("ck.json");
    let ck = ck.to_str().unwrap();
    for (args, names) in [
        (vec!["--checkpoint", ck], "--checkpoint"),
        (
            vec!["--checkpoint", ck, "--checkpoint-every", "0"],
            "--checkpoint-every",
        ),
        (
            vec!["--steps", "3", "--epochs", "2", "--batch-size", "100"],
            "--steps",
        ),
        (vec!["--warmup", "3", "--mode", "convex"], "--warmup"),
        (vec!["--warmup", "3", "--k", "3"], "--warmup"),
        // f64 where the fit runs in f32 only.
        (vec!["--precision", "f64", "--k", "3"], "--precision"),
        (vec!["--precision", "f64", "--method", "imp"], "--precision"),
    ] {
        let out = relu_iht(&[SMALL, &["--backend", "cpu"], &args].concat());
        assert_one_line_exit_2(&out, names);
    }
    assert!(!std::path::Path::new(ck).exists(), "no checkpoint written");
}

#[test]
fn outputs_are_checked_before_work_and_written_without_following_links() {
    let dir = scratch("out");
    let inr = |extra: &[&str]| {
        relu_iht(
            &[
                &[
                    "inr",
                    "--image",
                    "assets/camera.png",
                    "--max-side",
                    "12",
                    "--features",
                    "40",
                    "--m",
                    "4",
                    "--s",
                    "16",
                    "--steps",
                    "2",
                    "--backend",
                    "cpu",
                    "-q",
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    let out_dir = dir.to_str().unwrap().to_string();
    let missing = dir.join("missing").join("x.png");
    let target = dir.join("r.png");
    let (missing, target_s) = (missing.to_str().unwrap(), target.to_str().unwrap());
    assert_one_line_exit_2(&inr(&["--out", &out_dir]), "--out");
    assert_one_line_exit_2(&inr(&["--out", missing]), "--out");
    assert_one_line_exit_2(
        &inr(&["--out", target_s, "--checkpoint", target_s]),
        "--checkpoint",
    );
    // A link planted where a predictable temporary name used to be is left alone, and the
    // output is written.
    let victim = dir.join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("r.png.tmp")).unwrap();
    let out = inr(&["--out", target_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert!(target.is_file());
    let litter: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") && n != "r.png.tmp")
        .collect();
    assert!(litter.is_empty(), "temporary files left: {litter:?}");
}

#[test]
fn an_atomic_write_that_fails_leaves_nothing_behind() {
    let dir = scratch("atomic");
    let target = dir.join("a-folder");
    std::fs::create_dir(&target).unwrap();
    // Renaming a file over a folder fails: the error names the path, the temporary file goes.
    let err = relu_iht::atomic::write(&target, b"bytes").unwrap_err();
    assert!(err.to_string().contains("a-folder"), "{err}");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("a-folder")]);
    // And a plain write replaces the content whole.
    let file = dir.join("f.txt");
    relu_iht::atomic::write(&file, b"one").unwrap();
    relu_iht::atomic::write(&file, b"two").unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"two");
}

#[test]
fn argument_errors_keep_their_substance_on_one_line() {
    for (args, names) in [
        (vec!["planted", "--epochs", "3"], "--batch-size"),
        (vec!["planted", "--stpes", "3"], "'--steps'"),
        (
            vec!["planted", "--backend", "gpx"],
            "possible values: auto, gpu, cpu",
        ),
    ] {
        assert_one_line_exit_2(&relu_iht(&args), names);
    }
    // No arguments: the usage, and exit 2.
    let out = relu_iht(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage:"));
}

#[test]
fn impossible_sizes_and_values_are_refused_before_work() {
    for (args, names) in [
        (
            vec![
                "planted",
                "--backend",
                "cpu",
                "--n",
                "1000000000000",
                "--d",
                "10",
                "--m",
                "10",
                "--s",
                "5",
            ],
            "n = 1000000000000",
        ),
        (
            vec![
                "planted",
                "--backend",
                "cpu",
                "--n",
                "300",
                "--d",
                "10",
                "--m",
                "10",
                "--s",
                "20",
                "--k",
                "100000000",
            ],
            "k = 100000000",
        ),
        (
            vec![
                "inr",
                "--backend",
                "cpu",
                "--features",
                "100000000000",
                "--m",
                "1",
                "--s",
                "5",
                "--max-side",
                "8",
            ],
            "100000000000",
        ),
        (
            vec![
                "inr",
                "--backend",
                "cpu",
                "--features",
                "1000000000",
                "--m",
                "1",
                "--s",
                "5",
                "--max-side",
                "8",
                "--batch-size",
                "50",
            ],
            "features = 1000000000",
        ),
        (
            vec!["mnist", "--classes", "all", "--step-size=-1"],
            "--step-size",
        ),
        (
            vec!["mnist", "--classes", "all", "--step-size", "nan"],
            "--step-size",
        ),
        (vec!["--threads", "100000", "planted"], "--threads"),
        (
            vec!["planted", "--backend", "gpu", "--device-memory", "1"],
            "--device-memory",
        ),
    ] {
        let start = std::time::Instant::now();
        assert_one_line_exit_2(&relu_iht(&args), names);
        // Refused up front: no generation, loading or solving first (generous for a slow CI).
        assert!(
            start.elapsed().as_secs() < 20,
            "{args:?} took {:?}",
            start.elapsed()
        );
    }
}
