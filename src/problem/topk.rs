//! Streaming top-s selection (SPEC §2 step 2): a running set of at most `keep` entries plus the
//! magnitude of the worst one kept. Candidates arrive tile by tile; one that cannot beat the
//! threshold is rejected in O(1), the rest are buffered and the buffer is cut back to `keep` with a
//! linear-time selection whenever it doubles. Memory is O(keep), never O(m·d).
//!
//! Order: larger `|v|` first, ties broken by the smaller index. This is a strict total order on
//! distinct indices, so the selected set is unique: merging partial sets in any order (per thread,
//! per tile, CPU or GPU) gives the same answer. Exact zeros are never selected.

use crate::problem::sparse::SparseVec;
use std::cmp::Ordering;

/// `Less` when `a` ranks before (is better than) `b`.
#[inline]
pub fn rank(a: (u32, f32), b: (u32, f32)) -> Ordering {
    b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0))
}

/// The running top-`keep` set.
#[derive(Clone, Debug)]
pub struct TopS {
    keep: usize,
    buf: Vec<(u32, f32)>,
    /// The worst kept entry once `keep` entries are held; nothing ranking after it can enter.
    worst: Option<(u32, f32)>,
}

impl TopS {
    /// An empty set that will hold the `keep` best entries.
    pub fn new(keep: usize) -> Self {
        Self {
            keep,
            buf: Vec::with_capacity(2 * keep.min(1 << 20) + 16),
            worst: None,
        }
    }

    /// How many entries the set keeps.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// The worst entry kept once the set is full (nothing ranking after it can enter).
    pub fn worst(&self) -> Option<(u32, f32)> {
        self.worst
    }

    /// Whether `(c, v)` could enter the set now.
    #[inline]
    pub fn admits(&self, c: u32, v: f32) -> bool {
        v != 0.0 && self.worst.is_none_or(|w| rank((c, v), w) == Ordering::Less)
    }

    /// Offers one candidate.
    #[inline]
    pub fn push(&mut self, c: u32, v: f32) {
        if self.keep == 0 || !self.admits(c, v) {
            return;
        }
        self.buf.push((c, v));
        if self.buf.len() >= 2 * self.keep + 16 {
            self.compact();
        }
    }

    /// Offers `vals[k]` at index `first + k` for every k.
    pub fn push_run(&mut self, first: u32, vals: &[f32]) {
        for (k, &v) in vals.iter().enumerate() {
            self.push(first + k as u32, v);
        }
    }

    /// Merges another running set (the union's top-`keep`).
    pub fn merge(mut self, other: TopS) -> TopS {
        for (c, v) in other.buf {
            self.push(c, v);
        }
        self
    }

    fn compact(&mut self) {
        if self.buf.len() > self.keep {
            let k = self.keep - 1;
            self.buf.select_nth_unstable_by(k, |a, b| rank(*a, *b));
            self.buf.truncate(self.keep);
            // After the selection, position k holds the worst of the kept entries.
            self.worst = Some(self.buf[k]);
        } else if self.buf.len() == self.keep {
            self.worst = self.buf.iter().copied().max_by(|a, b| rank(*a, *b));
        }
    }

    /// The selected entries as a sparse vector of length `len`.
    pub fn finish(mut self, len: u64) -> SparseVec {
        self.compact();
        self.buf.sort_unstable_by_key(|p| p.0);
        let (idx, val) = self.buf.into_iter().unzip();
        SparseVec::from_sorted(len, idx, val)
    }
}

/// Plain reference: full sort of all candidates, take the first `keep` non-zeros.
pub fn reference_top(vals: &[f32], keep: usize) -> Vec<u32> {
    let mut all: Vec<(u32, f32)> = vals
        .iter()
        .enumerate()
        .filter(|p| *p.1 != 0.0)
        .map(|(c, &v)| (c as u32, v))
        .collect();
    all.sort_by(|a, b| rank(*a, *b));
    let mut idx: Vec<u32> = all.into_iter().take(keep).map(|p| p.0).collect();
    idx.sort_unstable();
    idx
}

/// The `keep` largest-magnitude entries of a sparse vector (used to prune an inflated support).
pub fn prune(x: &SparseVec, keep: usize) -> SparseVec {
    let mut top = TopS::new(keep);
    for (&c, &v) in x.indices().iter().zip(x.values()) {
        top.push(c, v);
    }
    top.finish(x.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn streaming_matches_full_sort_with_ties() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for trial in 0..200 {
            let len = rng.random_range(1..3000);
            // Few distinct magnitudes and both signs force many ties.
            let levels = rng.random_range(1..20);
            let vals: Vec<f32> = (0..len)
                .map(|_| {
                    let v = rng.random_range(0..levels) as f32 * 0.25;
                    if rng.random_bool(0.5) {
                        v
                    } else {
                        -v
                    }
                })
                .collect();
            let keep = match trial % 4 {
                0 => 1,
                1 => len,
                _ => rng.random_range(1..=len),
            };
            // Split into tiles of random sizes and merge per-tile sets in a shuffled order.
            let mut parts = Vec::new();
            let mut start = 0;
            while start < len {
                let w = rng.random_range(1..=len - start);
                let mut t = TopS::new(keep);
                t.push_run(start as u32, &vals[start..start + w]);
                parts.push(t);
                start += w;
            }
            let mut merged = TopS::new(keep);
            while !parts.is_empty() {
                let k = rng.random_range(0..parts.len());
                merged = merged.merge(parts.swap_remove(k));
            }
            let got = merged.finish(len as u64);
            assert_eq!(
                got.indices(),
                reference_top(&vals, keep).as_slice(),
                "trial {trial}"
            );
            for (&c, &v) in got.indices().iter().zip(got.values()) {
                assert_eq!(v, vals[c as usize]);
            }
        }
    }
}
