//! CPU twin of `shaders/topk.wgsl`: the radix-histogram threshold and compaction that cut one
//! tile of candidates down to a superset of those that can enter the running top-s. For `v ≠ 0`
//! the key `|v|.to_bits()` is monotone in `|v|`; its top 12 bits index 4096 bins.

/// Bins of the histogram.
pub const BINS: usize = 4096;
/// Right shift from a key to its bin.
pub const SHIFT: u32 = 19;

/// The key of a candidate.
#[inline]
pub fn key(v: f32) -> u32 {
    v.abs().to_bits()
}

/// Histogram of the candidates with `key > 0` and `key ≥ floor`.
pub fn histogram(cand: &[f32], floor: u32) -> Vec<u32> {
    let mut hist = vec![0u32; BINS];
    for &v in cand {
        let k = key(v);
        if k > 0 && k >= floor {
            hist[(k >> SHIFT) as usize] += 1;
        }
    }
    hist
}

/// The largest bin `B` with `count(bins ≥ B) ≥ keep` (bin 0 when fewer pass), as a key threshold
/// `max(B << 19, floor, 1)`.
pub fn threshold(hist: &[u32], keep: u32, floor: u32) -> u32 {
    let mut total = 0u32;
    let mut bin = 0u32;
    for b in (0..BINS).rev() {
        total += hist[b];
        if total >= keep {
            bin = b as u32;
            break;
        }
    }
    (bin << SHIFT).max(floor).max(1)
}

/// The survivors `(global index, value)` in candidate order; candidate k is coordinate `k % d` of
/// neuron `neurons[k / d]`.
pub fn compact(cand: &[f32], thr: u32, neurons: &[u32], d: usize) -> Vec<(u32, f32)> {
    cand.iter()
        .enumerate()
        .filter(|(_, &v)| key(v) >= thr)
        .map(|(k, &v)| (neurons[k / d] * d as u32 + (k % d) as u32, v))
        .collect()
}

/// All three phases, as one tile of the GPU gradient pass runs them.
pub fn twin(cand: &[f32], keep: u32, floor: u32, neurons: &[u32], d: usize) -> Vec<(u32, f32)> {
    let thr = threshold(&histogram(cand, floor), keep, floor);
    compact(cand, thr, neurons, d)
}
