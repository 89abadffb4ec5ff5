//! The sparse iterate: at most `s` nonzero weights out of `len = m·d`, as strictly increasing
//! 32-bit indices with their values. Index `c = j·d + i` is input coordinate `i` of neuron `j`,
//! so the entries of one neuron are a contiguous run. Exact zeros are never stored.

use crate::error::{Error, Result};

/// A sparse vector with sorted, unique indices and no stored zeros.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseVec {
    len: u64,
    idx: Vec<u32>,
    val: Vec<f32>,
}

impl SparseVec {
    /// The zero vector of length `len`.
    pub fn zeros(len: u64) -> Self {
        Self {
            len,
            idx: Vec::new(),
            val: Vec::new(),
        }
    }

    /// Builds from index/value pairs in any order; zeros are dropped, duplicates rejected.
    pub fn from_pairs(len: u64, mut pairs: Vec<(u32, f32)>) -> Result<Self> {
        pairs.sort_unstable_by_key(|p| p.0);
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::invalid("index", w[0].0, "appears twice"));
        }
        if let Some(p) = pairs.last() {
            if p.0 as u64 >= len {
                return Err(Error::invalid(
                    "index",
                    p.0,
                    format!("out of range for length {len}"),
                ));
            }
        }
        let (idx, val) = pairs.into_iter().filter(|p| p.1 != 0.0).unzip();
        Ok(Self { len, idx, val })
    }

    /// Builds from sorted indices and values already known valid; zeros are dropped.
    pub(crate) fn from_sorted(len: u64, idx: Vec<u32>, val: Vec<f32>) -> Self {
        debug_assert!(idx.windows(2).all(|w| w[0] < w[1]));
        debug_assert!(idx.last().is_none_or(|&c| (c as u64) < len));
        if val.iter().all(|&v| v != 0.0) {
            return Self { len, idx, val };
        }
        let (idx, val) = idx.into_iter().zip(val).filter(|p| p.1 != 0.0).unzip();
        Self { len, idx, val }
    }

    /// Length of the dense vector this represents.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Number of stored nonzeros.
    pub fn nnz(&self) -> usize {
        self.idx.len()
    }
    /// True when no entry is nonzero.
    pub fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }
    /// Sorted indices of the nonzeros.
    pub fn indices(&self) -> &[u32] {
        &self.idx
    }
    /// Values of the nonzeros, aligned with [`indices`](Self::indices).
    pub fn values(&self) -> &[f32] {
        &self.val
    }
    /// Value at dense index `c` (zero when not stored).
    pub fn get(&self, c: u32) -> f32 {
        self.idx.binary_search(&c).map_or(0.0, |k| self.val[k])
    }
    /// Position range of the entries whose index lies in `lo..hi`.
    pub fn range(&self, lo: u32, hi: u32) -> std::ops::Range<usize> {
        self.idx.partition_point(|&c| c < lo)..self.idx.partition_point(|&c| c < hi)
    }
    /// Euclidean norm, accumulated in f64.
    pub fn norm(&self) -> f64 {
        self.val
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt()
    }
    /// The dense vector (tests and small problems only).
    pub fn to_dense(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.len as usize];
        for (&c, &v) in self.idx.iter().zip(&self.val) {
            out[c as usize] = v;
        }
        out
    }
    /// Distinct neurons (`c / d`) holding at least one nonzero, ascending.
    pub fn neurons(&self, d: usize) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for &c in &self.idx {
            let j = c / d as u32;
            if out.last() != Some(&j) {
                out.push(j);
            }
        }
        out
    }
    /// `‖self − other‖₂` in f64, over the union of supports.
    pub fn distance(&self, other: &SparseVec) -> f64 {
        let (mut a, mut b, mut acc) = (0, 0, 0.0f64);
        while a < self.nnz() || b < other.nnz() {
            let ca = self.idx.get(a).copied().unwrap_or(u32::MAX);
            let cb = other.idx.get(b).copied().unwrap_or(u32::MAX);
            let diff = if ca == cb {
                a += 1;
                b += 1;
                self.val[a - 1] as f64 - other.val[b - 1] as f64
            } else if ca < cb {
                a += 1;
                self.val[a - 1] as f64
            } else {
                b += 1;
                -(other.val[b - 1] as f64)
            };
            acc += diff * diff;
        }
        acc.sqrt()
    }
}
