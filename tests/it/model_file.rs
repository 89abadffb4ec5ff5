//! The user's data in and the network out: the exported network computes what the engines
//! predict (scalar and vector models, one and two layers, both modes), the model file round-trips
//! and refuses what it cannot hold, the `.npy` and CSV readers take every layout they promise and
//! name the file, row and column of what they refuse; and the CLI's `fit`, `predict` and `render`.

use super::common::*;
use relu_iht::cpu::CpuBackend;
use relu_iht::io::model_file::{decode, encode, InrMeta, Kind, Meta, Model};
use relu_iht::io::{npy, table};
use relu_iht::problem::data::{InMemory, RowSource};
use relu_iht::problem::dense::View;
use relu_iht::problem::model::Loss;
use relu_iht::problem::network::{Layer, Network};
use relu_iht::problem::operator::Mode;
use relu_iht::solver::depth;
use relu_iht::solver::scalar::{IhtConfig, Safeguards};
use relu_iht::solver::vector::VectorConfig;
use relu_iht::Error;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

/// A two-layer classifier with a gated first layer, CSV column names and class labels.
pub fn small_model() -> Model {
    let layer = |out: usize, inp: usize, seed: u64, gated: bool| {
        let mut rng = rng(seed);
        Layer {
            out,
            inp,
            weight: nonzero(&mut rng, out * inp),
            gate: gated.then(|| nonzero(&mut rng, out * inp)),
        }
    };
    Model {
        network: Network {
            hidden: vec![layer(3, 4, 1, true), layer(2, 3, 2, false)],
            output: layer(3, 2, 3, false),
        },
        meta: Meta {
            kind: Kind::Classifier,
            task: "fit".into(),
            mode: "convex".into(),
            m: 5,
            s: 9,
            layers: 2,
            seed: 7,
            classes: Some(vec![-1, 4, 10]),
            columns: Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
            inr: None,
        },
    }
}

/// Relative ℓ2 difference.
fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

#[test]
fn exported_scalar_network_predicts_what_the_engine_does() {
    // Signed neurons (the default solver's safeguard): the last layer exports plain ReLU units
    // with output weights ±1; an earlier layer's signed units stay gated.
    for (layers, mode, signed) in [
        (1, Mode::SequentialConvex, false),
        (2, Mode::SequentialConvex, false),
        (1, Mode::Convex, false),
        (2, Mode::Convex, false),
        (1, Mode::SequentialConvex, true),
        (2, Mode::SequentialConvex, true),
    ] {
        let mut rng = rng(60 + layers as u64);
        let (n, d, m) = (700, 9, 6);
        let data = data(&mut rng, n, d);
        let rows: Arc<dyn RowSource> = Arc::new(InMemory(data.clone()));
        let config = IhtConfig {
            mode,
            safeguards: Safeguards {
                signed,
                concentrate: None,
            },
            ..IhtConfig::new(12 * layers, 8)
        };
        let (deep, mut be) = depth::fit_layers(
            CpuBackend::new(),
            rows.clone(),
            m,
            &config,
            layers,
            |_, _| {},
        )
        .unwrap();
        let want = deep.predict(&mut be, rows, m, n).unwrap();
        let net = deep.network(d).unwrap();
        net.validate("exported").unwrap();
        assert_eq!(
            net.gated(),
            mode == Mode::Convex || (signed && layers > 1),
            "{layers} layers, {mode:?}, signed {signed}"
        );
        let negative = deep.last().negated().len();
        assert_eq!(
            net.output.weight.iter().filter(|&&v| v == -1.0).count(),
            negative,
            "one output weight −1 per negative neuron"
        );
        if signed && layers == 1 {
            assert!(negative > 0, "the seed gives some neuron the sign −1");
        }
        assert_eq!(net.hidden.len(), layers);
        assert_eq!(net.nnz(), deep.nnz(), "every kept weight is exported");
        let got = net.predict(View::cols(data.xt(), n), n);
        // Both sum f32 products of the same weights in different orders.
        let diff = rel_diff(&got, &want);
        assert!(
            diff <= 1e-5,
            "{layers} layers, {mode:?}, signed {signed}: relative difference {diff:e}"
        );
    }
}

#[test]
fn exported_vector_network_predicts_what_the_engine_does() {
    for layers in [1, 2] {
        let mut rng = rng(70 + layers as u64);
        let (n, d, m, k) = (400, 6, 7, 3);
        let data = data(&mut rng, n, d);
        let targets = nonzero(&mut rng, n * k);
        let config = VectorConfig {
            s: 30 * layers,
            epochs: 10,
            batch_size: None,
            seed: 3,
            mode: Mode::SequentialConvex,
            loss: Loss::Mse,
            select: relu_iht::problem::model::Select::Magnitude,
            step: Some(0.2),
        };
        let mut model = depth::fit_vector_layers(
            CpuBackend::new(),
            data.clone(),
            targets,
            k,
            m,
            &config,
            layers,
            |_, _, _| {},
        )
        .unwrap();
        let want = model.predict(data.clone()).unwrap();
        let net = model.network().unwrap();
        net.validate("exported").unwrap();
        assert_eq!((net.d(), net.k(), net.hidden.len()), (d, k, layers));
        let got = net.predict(View::cols(data.xt(), n), n);
        let diff = rel_diff(&got, &want);
        assert!(
            diff <= 1e-5,
            "{layers} layers: relative difference {diff:e}"
        );
    }
}

#[test]
fn model_file_round_trips_every_kind() {
    let model = small_model();
    let path = Path::new("m.safetensors");
    assert_eq!(decode(&encode(&model).unwrap(), path).unwrap(), model);
    let mut inr = small_model();
    inr.network.hidden[0].inp = 6;
    inr.network.hidden[0].weight = nonzero(&mut rng(9), 18);
    inr.network.hidden[0].gate = None;
    inr.network.output = Layer {
        out: 1,
        inp: 2,
        weight: vec![1.0, 1.0],
        gate: None,
    };
    inr.meta.kind = Kind::Inr;
    inr.meta.classes = None;
    inr.meta.columns = None;
    inr.meta.inr = Some(InrMeta {
        b: nonzero(&mut rng(10), 9),
        half: 3,
        coords: 3,
        sigma: 5.0,
        coord_scale: 1.0 / 64.0,
        width: 64,
        height: 40,
        channels: 3,
    });
    assert_eq!(decode(&encode(&inr).unwrap(), path).unwrap(), inr);
}

/// A safetensors file of `tensors` (name, shape, f32 values, or f64 when `wide`) and metadata.
fn raw_file(tensors: &[(&str, Vec<usize>, Vec<f32>, bool)], meta: &[(&str, &str)]) -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v, wide)| {
            if *wide {
                v.iter().flat_map(|&x| (x as f64).to_le_bytes()).collect()
            } else {
                v.iter().flat_map(|&x| x.to_le_bytes()).collect()
            }
        })
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _, wide), b)| {
            let dtype = if *wide { Dtype::F64 } else { Dtype::F32 };
            (
                name.to_string(),
                TensorView::new(dtype, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    let info = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    safetensors::serialize(views, Some(info)).unwrap()
}

#[test]
fn model_file_refuses_what_it_cannot_hold_naming_the_file() {
    let base: Vec<(&str, &str)> = vec![
        ("format", "relu-iht"),
        ("format_version", "1"),
        ("kind", "regressor"),
        ("task", "fit"),
        ("mode", "scp"),
        ("d", "2"),
        ("k", "1"),
        ("m", "3"),
        ("s", "4"),
        ("layers", "1"),
        ("seed", "0"),
    ];
    let good = || {
        vec![
            ("0.weight", vec![2, 2], vec![1.0, -2.0, 0.5, 3.0], false),
            ("2.weight", vec![1, 2], vec![1.0, 1.0], false),
        ]
    };
    let path = Path::new("bad.safetensors");
    assert!(decode(&raw_file(&good(), &base), path).is_ok());
    let with = |k: &'static str, v: &'static str| {
        let mut m = base.clone();
        m.retain(|(key, _)| *key != k);
        m.push((k, v));
        m
    };
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"not a model at all".to_vec(), "safetensors"),
        (
            "newer version",
            raw_file(&good(), &with("format_version", "2")),
            "version 2",
        ),
        (
            "foreign file",
            raw_file(&good(), &with("format", "other")),
            "not a relu-iht model",
        ),
        ("d disagrees", raw_file(&good(), &with("d", "3")), "'d'"),
        (
            "bad kind",
            raw_file(&good(), &with("kind", "oracle")),
            "oracle",
        ),
        (
            "classifier without labels",
            raw_file(&good(), &with("kind", "classifier")),
            "classes",
        ),
    ];
    let mut t = good();
    t[0].2[1] = f32::NAN;
    cases.push(("NaN weight", raw_file(&t, &base), "NaN"));
    let mut t = good();
    t[1].1 = vec![1, 3];
    t[1].2 = vec![1.0; 3];
    cases.push(("shapes do not chain", raw_file(&t, &base), "layer 1"));
    let mut t = good();
    t.pop();
    cases.push((
        "missing output",
        raw_file(&t, &base),
        "'2.weight' is missing",
    ));
    let mut t = good();
    t.push(("extra", vec![1, 1], vec![1.0], false));
    cases.push(("extra tensor", raw_file(&t, &base), "'extra'"));
    let mut t = good();
    t[0].3 = true;
    cases.push(("float64 tensor", raw_file(&t, &base), "F64"));
    for (what, bytes, names) in cases {
        match decode(&bytes, path) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => {
                let text = e.to_string();
                assert!(text.starts_with("bad.safetensors"), "{what}: {text}");
                assert!(text.contains(names), "{what}: {text} should name {names}");
                assert_eq!(text.lines().count(), 1, "{what}: {text}");
            }
        }
    }
}

/// `.npy` bytes by hand: any dtype string, order and shape.
fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn npy_reader_takes_every_promised_layout() {
    let path = Path::new("x.npy");
    // X = [[1, 2, 3], [4, 5, 6]] in six encodings.
    let c: Vec<f64> = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let f: Vec<f64> = vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
    let le64 = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let files = [
        npy_bytes(
            "<f4",
            false,
            "(2, 3)",
            &c.iter()
                .flat_map(|&x| (x as f32).to_le_bytes())
                .collect::<Vec<_>>(),
        ),
        npy_bytes("<f8", true, "(2, 3)", &le64(&f)),
        npy_bytes(
            ">f8",
            false,
            "(2, 3)",
            &c.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<_>>(),
        ),
        npy_bytes(
            "<i8",
            false,
            "(2, 3)",
            &c.iter()
                .flat_map(|&x| (x as i64).to_le_bytes())
                .collect::<Vec<_>>(),
        ),
        npy_bytes(
            "|u1",
            true,
            "(2, 3)",
            &f.iter().map(|&x| x as u8).collect::<Vec<_>>(),
        ),
        npy_bytes(
            "<i2",
            false,
            "(2, 3)",
            &c.iter()
                .flat_map(|&x| (x as i16).to_le_bytes())
                .collect::<Vec<_>>(),
        ),
    ];
    for (k, bytes) in files.iter().enumerate() {
        let m = npy::parse_bytes::<f32>(bytes, path).unwrap_or_else(|e| panic!("file {k}: {e}"));
        assert_eq!((m.rows, m.cols), (2, Some(3)), "file {k}");
        for r in 0..2 {
            for col in 0..3 {
                assert_eq!(
                    m.at(r, col),
                    (r * 3 + col + 1) as f32,
                    "file {k} ({r}, {col})"
                );
            }
        }
        assert_eq!(
            m.clone().into_row_major(),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        assert_eq!(m.into_column_major(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
    let refused = [
        (npy_bytes("<c8", false, "(2,)", &[0; 16]), "<c8"),
        (npy_bytes("|b1", false, "(2,)", &[0; 2]), "|b1"),
        (npy_bytes("<f4", false, "(2, 3)", &[0; 10]), "truncated"),
        (
            npy_bytes("<f4", false, "(1, 1, 1)", &[0; 4]),
            "(1-D or 2-D)",
        ),
        (
            npy_bytes("<f4", false, "(4000000000, 4000000000)", &[0; 4]),
            "truncated",
        ),
        (b"a,b\n1,2\n".to_vec(), "not a .npy file"),
    ];
    for (bytes, names) in refused {
        let e = npy::parse_bytes::<f32>(&bytes, path).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::Format { .. }), "{text}");
        assert!(
            text.starts_with("x.npy") && text.contains(names),
            "{text} should name {names}"
        );
    }
}

#[test]
fn csv_reader_names_line_and_column() {
    let path = Path::new("t.csv");
    let t = table::parse(&b"a, b ,y\n1,2,3\n4,5.5,6\n"[..], path, Some("y"), None).unwrap();
    assert_eq!(
        (t.n, t.columns.clone()),
        (2, vec!["a".to_string(), "b".into()])
    );
    assert_eq!(t.xt, vec![1.0, 4.0, 2.0, 5.5]);
    assert_eq!(t.target, Some(vec![3.0, 6.0]));
    let pick = ["b".to_string()];
    let t = table::parse(&b"a,b,y\n1,2,3\n"[..], path, None, Some(&pick)).unwrap();
    assert_eq!(t.xt, vec![2.0]);
    for (text, target, names) in [
        ("a,b\n1,2\n", Some("y"), "no column 'y' (columns: a, b)"),
        (
            "a,b,y\n1,2,3\n4,x,6\n",
            Some("y"),
            "line 3, column 'b': 'x' is not a number",
        ),
        (
            "a,b,y\n1,2,3\n4,nan,6\n",
            Some("y"),
            "line 3, column 'b': non-finite",
        ),
        ("1,2,3\n4,5,6\n", None, "header"),
        ("a,b,y\n1,2,3\n4,5\n", Some("y"), "line 3"),
        ("a,a,y\n1,2,3\n", Some("y"), "twice"),
        ("a,b,y\n", Some("y"), "no data rows"),
    ] {
        let e = table::parse(text.as_bytes(), path, target, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.csv") && e.contains(names),
            "{text:?}: {e} should name {names}"
        );
    }
}

fn relu_iht(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relu-iht"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("relu-iht-io-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A planted regression problem as files: X (n × d, f32) and y = Σ relu(X w_j).
fn planted_files(dir: &Path, n: usize, d: usize) -> (String, String) {
    let mut rng = rng(80);
    let x = nonzero(&mut rng, n * d);
    let w = [0.8f32, -1.0, 0.0, 0.5];
    let y: Vec<f32> = x
        .chunks(d)
        .map(|row| {
            let a: f32 = row.iter().zip(w.iter().cycle()).map(|(a, b)| a * b).sum();
            let b: f32 = row.iter().rev().zip(w.iter()).map(|(a, b)| a * b).sum();
            a.max(0.0) + b.max(0.0)
        })
        .collect();
    let (xp, yp) = (dir.join("X.npy"), dir.join("y.npy"));
    npy::write(&xp, &[n, d], &x).unwrap();
    npy::write(&yp, &[n], &y).unwrap();
    (xp.display().to_string(), yp.display().to_string())
}

fn assert_refused(out: &Output, names: &str, model: &Path) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(names), "{err} should name {names}");
    assert!(!model.exists(), "{err}: a model file was left behind");
}

#[test]
fn fit_refuses_bad_data_with_one_line_and_no_model_file() {
    let dir = scratch("fit-bad");
    let (x, y) = planted_files(&dir, 50, 4);
    let model = dir.join("m.safetensors");
    let save = model.to_str().unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let mut nan = vec![0.5f32; 200];
    nan[4 * 7 + 2] = f32::NAN;
    let nan_x = dir.join("nan.npy");
    npy::write(&nan_x, &[50, 4], &nan).unwrap();
    let short_y = dir.join("short.npy");
    npy::write(&short_y, &[49], &[1.0f32; 49]).unwrap();
    let complex = put(
        "complex.npy",
        &npy_bytes("<c8", false, "(50, 4)", &[0; 1600]),
    );
    let good = std::fs::read(&x).unwrap();
    let truncated = put("trunc.npy", &good[..good.len() - 7]);
    let text = put("text.npy", b"1,2,3\n");
    let csv = put("t.csv", b"a,b,y\n1,2,3\n4,5,6\n");
    let nan_x = nan_x.display().to_string();
    let short_y = short_y.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--x", &nan_x, "--y", &y], "row 7, column 2"),
        (vec!["--x", &x, "--y", &short_y], "49 rows"),
        (vec!["--x", &complex, "--y", &y], "<c8"),
        (vec!["--x", &truncated, "--y", &y], "truncated"),
        (vec!["--x", &text, "--y", &y], "not a .npy file"),
        (vec!["--x", &csv, "--target", "price"], "no column 'price'"),
        (
            vec!["--x", &x, "--y", &y, "--classes"],
            "not an integer class label",
        ),
        (vec!["--x", &x], "missing targets"),
    ];
    for (args, names) in cases {
        let mut all = vec![
            "fit",
            "--m",
            "3",
            "--s",
            "4",
            "--steps",
            "2",
            "--backend",
            "cpu",
            "--save",
            save,
        ];
        all.extend(args);
        assert_refused(&relu_iht(&all), names, &model);
    }
}

#[test]
fn fit_save_predict_round_trip_and_a_model_of_another_d_is_refused() {
    let dir = scratch("fit-predict");
    let (x, y) = planted_files(&dir, 400, 4);
    let model = dir.join("m.safetensors");
    let save = model.to_str().unwrap();
    let out = relu_iht(&[
        "fit",
        "--x",
        &x,
        "--y",
        &y,
        "--m",
        "4",
        "--s",
        "6",
        "--backend",
        "cpu",
        "--save",
        save,
        "--json",
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["task"], "fit");
    assert!(rec["train"]["r2"].as_f64().unwrap() > 0.5, "{rec}");
    let pred = dir.join("p.npy");
    let out = relu_iht(&[
        "predict",
        "--model",
        save,
        "--x",
        &x,
        "--out",
        pred.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = npy::read::<f32>(&pred).unwrap();
    assert_eq!((p.rows, p.cols), (400, None));
    // The model's MSE recomputed from its predictions agrees with the fit's report.
    let yv = npy::read::<f32>(Path::new(&y)).unwrap().values;
    let mse = p
        .values
        .iter()
        .zip(&yv)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / 400.0;
    let want = rec["train"]["mse"].as_f64().unwrap();
    assert!((mse - want).abs() <= 1e-4 * want + 1e-9, "{mse} vs {want}");
    let other = dir.join("x5.npy");
    npy::write(&other, &[3, 5], &[0.5f32; 15]).unwrap();
    let out_file = dir.join("q.npy");
    let out = relu_iht(&[
        "predict",
        "--model",
        save,
        "--x",
        other.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_refused(&out, "5 features", &out_file);
}

#[test]
fn inr_save_then_render_reproduces_the_fit_and_resamples() {
    let dir = scratch("render");
    let (fit_png, model) = (dir.join("fit.png"), dir.join("inr.safetensors"));
    let out = relu_iht(&[
        "inr",
        "--max-side",
        "24",
        "--m",
        "20",
        "--s",
        "300",
        "--steps",
        "10",
        "--features",
        "200",
        "--unit-coords",
        "--sigma",
        "8",
        "--backend",
        "cpu",
        "-q",
        "--out",
        fit_png.to_str().unwrap(),
        "--save",
        model.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let same = dir.join("same.png");
    let out = relu_iht(&[
        "render",
        "--model",
        model.to_str().unwrap(),
        "--out",
        same.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (
        image::open(&fit_png).unwrap().to_luma8(),
        image::open(&same).unwrap().to_luma8(),
    );
    assert_eq!(a.dimensions(), b.dimensions());
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&p, &q)| ((p as f64 - q as f64) / 255.0).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    let psnr = -10.0 * mse.max(1e-300).log10();
    assert!(
        psnr >= 60.0,
        "render at the fitted size: {psnr:.1} dB against the fit"
    );
    let big = dir.join("big.png");
    let out = relu_iht(&[
        "render",
        "--model",
        model.to_str().unwrap(),
        "--size",
        "48",
        "--out",
        big.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let big = image::open(&big).unwrap().to_luma8();
    assert_eq!(big.dimensions(), (2 * a.width(), 2 * a.height()));
    let not_inr = dir.join("x.png");
    let out = relu_iht(&[
        "render",
        "--model",
        "/nonexistent/m.safetensors",
        "--out",
        not_inr.to_str().unwrap(),
    ]);
    assert_refused(&out, "m.safetensors", &not_inr);
}

/// The Python check of the model file (`tests/py/model_file.py`: NumPy builds the data, reads the
/// file with the `safetensors` package and predicts as the README's snippet does). Runs with
/// `RELU_IHT_PYTHON` (a Python with numpy and safetensors; `.ci/run` makes one); without it the
/// test says why it skipped, and with `RELU_IHT_REQUIRE_PYTHON=1` (CI) it fails.
#[test]
fn python_reads_the_model_file_as_the_readme_says() {
    let python = std::env::var("RELU_IHT_PYTHON").unwrap_or_else(|_| "python3".into());
    let required = std::env::var("RELU_IHT_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    let probe = Command::new(&python)
        .args(["-c", "import numpy, safetensors"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        let why =
            format!("{python} with numpy and safetensors is not available (set RELU_IHT_PYTHON)");
        assert!(!required, "{why}");
        eprintln!("skipping: {why}");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/model_file.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_relu-iht"))
        .arg(scratch("python"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn probed_step_is_the_best_tried_and_beats_the_mnist_rule_on_unit_scale_data() {
    let mut rng = rng(90);
    let (n, d, m, k) = (500, 6, 10, 3);
    let data = data(&mut rng, n, d);
    // Classes from the sign pattern of two inputs.
    let mut targets = vec![0.0f32; n * k];
    for r in 0..n {
        let c = (data.at(r, 0) > 0.0) as usize + (data.at(r, 1) > 0.3) as usize;
        targets[r * k + c] = 1.0;
    }
    let config = VectorConfig {
        s: 40,
        epochs: 20,
        batch_size: None,
        seed: 0,
        mode: Mode::SequentialConvex,
        loss: Loss::CrossEntropy,
        select: relu_iht::problem::model::Select::Magnitude,
        step: None,
    };
    let (be, alpha, tried) = relu_iht::solver::vector::choose_step(
        CpuBackend::new(),
        data.clone(),
        &targets,
        k,
        m,
        &config,
    )
    .unwrap();
    assert!(tried.len() >= 6, "{tried:?}");
    let best = tried.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
    assert!(
        tried.iter().any(|&(a, l)| a == alpha && l == best),
        "{alpha} {tried:?}"
    );
    let final_loss = |be: CpuBackend, step: f32| {
        let cfg = VectorConfig {
            step: Some(step),
            ..config.clone()
        };
        let mut s =
            relu_iht::solver::vector::VectorIht::new(be, data.clone(), targets.clone(), k, m, cfg)
                .unwrap();
        let mut last = f64::NAN;
        s.run(|_, l| last = l).unwrap();
        (last, s.into_backend())
    };
    let (probed, be) = final_loss(be, alpha);
    let (rule, _) = final_loss(be, config.step_size(m));
    assert!(
        probed < rule,
        "probed step {alpha}: loss {probed}; SPEC §3's 0.001: {rule}"
    );
}
