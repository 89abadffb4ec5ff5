//! Every parser of outside bytes against random and mutated inputs: the IDX reader, image
//! decoding, and checkpoints. 10⁵ inputs each, from a fixed seed (reproducible); each input is
//! either parsed or refused with an error value — none may panic.

use super::common::rng;
use rand::Rng;
use relu_iht::solver::checkpoint::Checkpoint;
use relu_iht::tasks::inr::Image;
use relu_iht::tasks::mnist::parse_idx;
use relu_iht::SparseVec;
use std::path::Path;

/// Inputs per parser.
const INPUTS: usize = 100_000;

/// Half random byte strings, half mutations of `seed` (flips, overwrites, truncation, insertion,
/// duplication of a span).
fn inputs(seed_input: &[u8], stream: u64) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut rng = rng(stream);
    (0..INPUTS).map(move |k| {
        if k % 2 == 0 {
            let len = rng.random_range(0..300);
            return (0..len).map(|_| rng.random()).collect();
        }
        let mut v = seed_input.to_vec();
        for _ in 0..rng.random_range(1..5) {
            if v.is_empty() {
                v.push(rng.random());
                continue;
            }
            let at = rng.random_range(0..v.len());
            match rng.random_range(0..5) {
                0 => v[at] ^= 1 << rng.random_range(0..8),
                1 => v[at] = rng.random(),
                2 => v.truncate(at),
                3 => v.insert(at, rng.random()),
                _ => {
                    let end = (at + rng.random_range(1..16)).min(v.len());
                    let span = v[at..end].to_vec();
                    v.splice(at..at, span);
                }
            }
        }
        v
    })
}

/// Runs `parse` on every input; returns how many parsed.
fn fuzz(name: &str, seed_input: &[u8], stream: u64, parse: impl Fn(&[u8]) -> bool) -> usize {
    let mut parsed = 0;
    for (k, input) in inputs(seed_input, stream).enumerate() {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(&input))) {
            Ok(ok) => parsed += ok as usize,
            Err(_) => panic!("{name}: input {k} panicked: {input:?}"),
        }
    }
    parsed
}

#[test]
fn idx_reader_never_panics() {
    // A valid 3 × 2 × 2 u8 file.
    let mut idx = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2];
    idx.extend(0..12u8);
    assert!(parse_idx(&idx, "seed").is_ok());
    let parsed = fuzz("idx", &idx, 50, |b| parse_idx(b, "fuzz").is_ok());
    assert!(parsed > 0 && parsed < INPUTS, "{parsed}");
}

#[test]
fn image_decoding_never_panics() {
    let mut png = std::io::Cursor::new(Vec::new());
    image::GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 40 + y * 7) as u8]))
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let png = png.into_inner();
    let path = Path::new("fuzz.png");
    assert!(Image::decode(&png, path, 64).is_ok());
    let parsed = fuzz("image", &png, 51, |b| Image::decode(b, path, 64).is_ok());
    assert!(parsed < INPUTS, "{parsed}");
}

#[test]
fn checkpoint_parsing_never_panics() {
    let x = SparseVec::from_pairs(40, vec![(1, 0.5), (7, -2.0), (30, 1.25)]).unwrap();
    let ck = Checkpoint::new("run", 3, &x, &[], None);
    let path = Path::new("fuzz.json");
    let bytes = serde_json::to_vec(&ck).unwrap();
    let parse = |b: &[u8]| {
        Checkpoint::parse(b, path, "run")
            .and_then(|c| c.x())
            .is_ok()
    };
    assert!(parse(&bytes));
    let parsed = fuzz("checkpoint", &bytes, 52, parse);
    assert!(parsed < INPUTS, "{parsed}");
}

#[test]
fn npy_reader_never_panics() {
    let bytes = relu_iht::io::npy::encode(&[3, 2], &[1.0f32, -2.0, 3.5, 0.25, 8.0, 1e-3]).unwrap();
    let path = Path::new("fuzz.npy");
    let parse = |b: &[u8]| relu_iht::io::npy::parse_bytes::<f32>(b, path).is_ok();
    assert!(parse(&bytes));
    let parsed = fuzz("npy", &bytes, 53, parse);
    assert!(parsed > 0 && parsed < INPUTS, "{parsed}");
}

#[test]
fn csv_reader_never_panics() {
    let text = b"a,b,target\n1.5,2,3\n-4,5e-3,6\n7,8,9\n";
    let path = Path::new("fuzz.csv");
    let parse = |b: &[u8]| relu_iht::io::table::parse(b, path, Some("target"), None).is_ok();
    assert!(parse(text));
    let parsed = fuzz("csv", text, 54, parse);
    assert!(parsed > 0 && parsed < INPUTS, "{parsed}");
}

#[test]
fn model_file_reader_never_panics() {
    use relu_iht::io::model_file::{decode, encode};
    let model = super::model_file::small_model();
    let bytes = encode(&model).unwrap();
    let path = Path::new("fuzz.safetensors");
    assert_eq!(decode(&bytes, path).unwrap(), model);
    let parsed = fuzz("model", &bytes, 55, |b| decode(b, path).is_ok());
    assert!(parsed < INPUTS, "{parsed}");
}
