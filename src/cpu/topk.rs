//! CPU twin of `shaders/topk.wgsl`: the device's merge of one tile of candidates into the running
//! top-s, step for step — four 8-bit radix-select passes over the pool (running set, then the
//! tile), then the stable compaction that keeps every key above the threshold and the first
//! `need` keys equal to it. The result must equal [`crate::problem::topk::TopS`] on the same candidates
//! (ties to the smaller index, zeros dropped), sorted by index.

/// The key of a candidate: monotone in `|v|`, 0 for ±0.
#[inline]
pub fn key(v: f32) -> u32 {
    v.abs().to_bits()
}

/// The threshold key T and how many entries equal to T are kept, or `None` when every nonzero
/// entry of the pool is kept (at most `keep` of them).
pub fn radix_select(keys: &[u32], keep: usize) -> Option<(u32, usize)> {
    let nonzero = keys.iter().filter(|&&k| k > 0).count();
    if nonzero <= keep {
        return None;
    }
    let (mut prefix, mut need) = (0u32, keep);
    for pass in 0..4u32 {
        let shift = 24 - 8 * pass;
        let mut bins = [0usize; 256];
        for &k in keys {
            let same = pass == 0 || (k >> (shift + 8)) == (prefix >> (shift + 8));
            if k > 0 && same {
                bins[((k >> shift) & 255) as usize] += 1;
            }
        }
        let mut cum = 0;
        let mut bin = 0;
        for b in (0..256).rev() {
            if cum + bins[b] >= need {
                bin = b as u32;
                break;
            }
            cum += bins[b];
        }
        prefix |= bin << shift;
        need -= cum;
    }
    Some((prefix, need))
}

/// One tile's merge: the pool is `run` (sorted by index) then the tile's candidates, candidate k
/// being neuron `neurons[k / d]`, coordinate `k % d`; returns the new running set.
pub fn twin_merge(
    run: &[(u32, f32)],
    cand: &[f32],
    neurons: &[u32],
    d: usize,
    keep: usize,
) -> Vec<(u32, f32)> {
    let pool: Vec<(u32, f32)> = run
        .iter()
        .copied()
        .chain(
            cand.iter()
                .enumerate()
                .map(|(k, &v)| (neurons[k / d] * d as u32 + (k % d) as u32, v)),
        )
        .collect();
    let keys: Vec<u32> = pool.iter().map(|p| key(p.1)).collect();
    let cut = radix_select(&keys, keep);
    let mut ties = 0;
    pool.iter()
        .zip(&keys)
        .filter(|(_, &k)| match cut {
            None => k > 0,
            Some((thr, need)) => {
                if k == thr {
                    ties += 1;
                    ties <= need
                } else {
                    k > thr
                }
            }
        })
        .map(|(p, _)| *p)
        .collect()
}
