//! Shared fixtures: small random problems of awkward shapes, and comparison helpers that say
//! index, actual, expected, difference and tolerance.

use rand::{Rng, SeedableRng};
use relu_iht::problem::data::Data;
use relu_iht::problem::operator::{Generators, Operator};
use relu_iht::SparseVec;
use std::sync::Arc;

pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

/// Non-zero random values in ±[0.1, 1.1).
pub fn nonzero(rng: &mut impl Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| {
            let v: f32 = rng.random_range(0.1..1.1);
            if rng.random_bool(0.5) {
                v
            } else {
                -v
            }
        })
        .collect()
}

/// Random data of n × d with random targets.
pub fn data(rng: &mut impl Rng, n: usize, d: usize) -> Arc<Data> {
    let xt = nonzero(rng, n * d);
    let y = nonzero(rng, n);
    Arc::new(Data::from_columns(n, d, xt, y).unwrap())
}

/// A random sparse vector with `nnz` distinct entries among `len`.
pub fn sparse(rng: &mut impl Rng, len: usize, nnz: usize) -> SparseVec {
    let idx = rand::seq::index::sample(rng, len, nnz.min(len));
    let vals = nonzero(rng, nnz);
    SparseVec::from_pairs(
        len as u64,
        idx.into_iter().map(|c| c as u32).zip(vals).collect(),
    )
    .unwrap()
}

/// Both generator modes for an operator: random (seed) and weights (a random sparse w).
pub fn operators(rng: &mut impl Rng, data: Arc<Data>, m: usize) -> Vec<Operator> {
    let d = data.d();
    let w = sparse(rng, m * d, (m * d).div_ceil(3));
    vec![
        Operator::new(data.clone(), m, Generators::Random { seed: 5 }).unwrap(),
        Operator::new(data, m, Generators::Weights(w)).unwrap(),
    ]
}

/// Asserts |got − want| ≤ tol·scale elementwise, with a message naming the index.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64, scale: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let diff = (g as f64 - w).abs();
        assert!(
            diff <= tol * scale,
            "{what}[{k}]: actual {g}, expected {w}, difference {diff:e}, tolerance {:e}",
            tol * scale
        );
    }
}

/// The awkward shapes of STYLE rule 2: one row, one neuron, sizes off the 8/64/1024 grids,
/// several support chunks.
pub const SHAPES: &[(usize, usize, usize)] = &[
    (1, 3, 2),
    (7, 1, 1),
    (65, 5, 1),
    (130, 9, 7),
    (1100, 4, 3),
    (2500, 13, 11),
    // Multiples of 256 rows: X's columns are padded (`Data::ld`), one spanning several chunks.
    (768, 6, 4),
    (2304, 5, 3),
];
