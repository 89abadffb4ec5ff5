//! MNIST: the IDX reader's checks, the paper's split, and the binary task end to end on tiny
//! fixtures written here (the tests never need the fetched data).

use relu_iht::tasks::mnist::{load_split, parse_idx, read_idx};
use std::path::Path;
use std::process::Command;

/// An IDX file of bytes with the given dimensions.
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Writes a 4-file MNIST-like set of `side × side` images: the train file holds `train` images,
/// the test file `test`, labels cycling through 0..10; digit c's pixels are bright in column c.
pub fn write_fixture(dir: &Path, side: usize, train: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let make = |count: usize, offset: usize| {
        let labels: Vec<u8> = (0..count).map(|k| ((k + offset) % 10) as u8).collect();
        let mut pixels = Vec::with_capacity(count * side * side);
        for (k, &l) in labels.iter().enumerate() {
            for r in 0..side {
                for c in 0..side {
                    let on = c == l as usize % side;
                    pixels.push(if on {
                        200 + (k % 50) as u8
                    } else {
                        ((r * 7 + c * 3 + k) % 40) as u8
                    });
                }
            }
        }
        (labels, pixels)
    };
    let (tl, tp) = make(train, 0);
    let (el, ep) = make(test, 3);
    let s = side as u32;
    std::fs::write(
        dir.join("train-images-idx3-ubyte"),
        idx_bytes(&[train as u32, s, s], &tp),
    )
    .unwrap();
    std::fs::write(
        dir.join("train-labels-idx1-ubyte"),
        idx_bytes(&[train as u32], &tl),
    )
    .unwrap();
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        idx_bytes(&[test as u32, s, s], &ep),
    )
    .unwrap();
    std::fs::write(
        dir.join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[test as u32], &el),
    )
    .unwrap();
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("relu-iht-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn idx_reader_rejects_malformed_files() {
    let good = idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    let idx = parse_idx(&good, "good").unwrap();
    assert_eq!(idx.dims, vec![2, 3]);
    assert_eq!(idx.data, vec![1, 2, 3, 4, 5, 6]);
    let mut garbled = good.clone();
    garbled[1] = 7;
    let mut float = good.clone();
    float[2] = 0x0D;
    let overflow = idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0, 0], "too short"),
        (garbled, "magic"),
        (float, "0x0d"),
        (good[..good.len() - 1].to_vec(), "need 6 bytes"),
        ([good.clone(), vec![9]].concat(), "the file has 7"),
        (good[..9].to_vec(), "truncated IDX header"),
        (idx_bytes(&[], &[]), "zero dimensions"),
        (overflow, "overflow"),
    ];
    for (bytes, needle) in cases {
        let err = parse_idx(&bytes, "some/file-idx").unwrap_err().to_string();
        assert!(err.starts_with("some/file-idx: "), "names the file: {err}");
        assert!(err.contains(needle), "expected '{needle}' in '{err}'");
    }
    let missing = read_idx(Path::new("/nonexistent/train-images-idx3-ubyte")).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("/nonexistent/train-images-idx3-ubyte"),
        "{missing}"
    );
}

#[test]
fn split_takes_train_then_test_per_digit_in_file_order() {
    let dir = tempdir("split");
    write_fixture(&dir, 4, 60, 30);
    let (tr, te) = load_split(&dir, &[0, 1], 5, 2).unwrap();
    assert_eq!((tr.len(), te.len(), tr.d), (10, 4, 16));
    assert_eq!(tr.labels, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    assert_eq!(te.labels, [0, 0, 1, 1]);
    // Digit 0 is at train-file positions 0, 10, …, 50: its 6th image (the first test one) is train
    // image 50; its 7th comes from the test file, whose labels start at 3: test image 7.
    assert_eq!(te.x[0], 200, "pixel (0, 0) of train-file image 50");
    assert_eq!(te.x[16], 207, "pixel (0, 0) of test-file image 7");
    let err = load_split(&dir, &[0], 20, 5).unwrap_err().to_string();
    assert!(err.contains("digit = 0"), "{err}");
}

#[test]
fn binary_mnist_cli_on_a_fixture() {
    let dir = tempdir("cli");
    write_fixture(&dir.join("mnist"), 6, 400, 100);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "mnist",
            "--data-dir",
            dir.to_str().unwrap(),
            "--test-per-class",
            "8",
        ];
        if !extra.contains(&"--train-per-class") {
            args.extend_from_slice(&["--train-per-class", "30"]);
        }
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_relu-iht"))
            .args(&args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--m",
        "8",
        "--s",
        "12",
        "--steps",
        "6",
        "--backend",
        "cpu",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["task"], "mnist");
    assert_eq!(v["n"], 60);
    assert_eq!(v["d"], 36);
    // Digit c lights column c: the classes are separable, and the fit must find it.
    assert!(v["accuracy"].as_f64().unwrap() >= 0.9, "{v}");

    for (extra, needle) in [
        (vec!["--train-per-class", "0"], "--train-per-class = 0"),
        (vec!["--train-per-class", "500"], "digit = 0"),
        (vec!["--s", "0"], "s = 0"),
    ] {
        let out = run(&extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(needle) && stderr.trim().lines().count() == 1,
            "{extra:?}: {stderr}"
        );
    }
    // A truncated image file: one line naming the file.
    let images = dir.join("mnist").join("t10k-images-idx3-ubyte");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 10]).unwrap();
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("t10k-images-idx3-ubyte") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
