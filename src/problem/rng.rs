//! Counter-based random numbers: every value is a pure function of `(key, a, b)`, so generator
//! vectors `h_j`, planted data and anything else random can be produced in any order, in parallel,
//! on any backend, without storing them and without global RNG state.
//!
//! The mixer is SplitMix64's finalizer applied twice (once per counter word); Gaussians come from
//! Box–Muller in f64 on a pair of counters, rounded once to f32.

/// Independent streams derived from one user seed; each use of randomness takes its own stream so
/// that, e.g., the solver's generator vectors never coincide with the planted data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Generator vectors `h_j` of the convex model.
    Generators = 1,
    /// Planted-task inputs `X`.
    Inputs = 2,
    /// Planted-task weights and their positions.
    Planted = 3,
    /// Minibatch shuffles.
    Shuffle = 4,
    /// Fourier-feature frequencies of the INR task.
    Features = 5,
    /// Initial values of zero blocks in the vector-output model.
    Init = 6,
    /// Count-sketch hashes and signs.
    Sketch = 7,
    /// Output signs of the scalar model's signed neurons.
    Signs = 8,
}

#[inline]
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key for one (seed, stream) pair.
#[inline]
pub fn key(seed: u64, stream: Stream) -> u64 {
    splitmix64(seed ^ splitmix64(stream as u64))
}

/// A uniformly distributed 64-bit word for counter `(a, b)` under `key`.
#[inline]
pub fn bits(key: u64, a: u64, b: u64) -> u64 {
    splitmix64(splitmix64(key ^ a.wrapping_mul(0xD1B5_4A32_D192_ED03)) ^ b)
}

/// Uniform in the open-closed interval (0, 1], 53 bits.
#[inline]
fn unit_open(w: u64) -> f64 {
    ((w >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal for counter `(a, b)`: Box–Muller on the pair `(a, b & !1)`, `(a, b | 1)`,
/// taking the cosine branch for even `b` and the sine branch for odd `b`.
#[inline]
pub fn gauss(key: u64, a: u64, b: u64) -> f32 {
    let (radius, angle) = polar(key, a, b & !1);
    let v = if b & 1 == 0 {
        radius * angle.cos()
    } else {
        radius * angle.sin()
    };
    v as f32
}

/// The two standard normals of counters `(a, even)` and `(a, even | 1)` (`even` even): one
/// Box–Muller draw, the same values [`gauss`] gives for each.
#[inline]
pub fn gauss_pair(key: u64, a: u64, even: u64) -> (f32, f32) {
    debug_assert_eq!(even & 1, 0);
    let (radius, angle) = polar(key, a, even);
    ((radius * angle.cos()) as f32, (radius * angle.sin()) as f32)
}

/// Box–Muller's radius and angle for the pair `(a, even)`, `(a, even | 1)`.
#[inline]
fn polar(key: u64, a: u64, even: u64) -> (f64, f64) {
    let u1 = unit_open(bits(key, a, even));
    let u2 = unit_open(bits(key, a, even | 1));
    ((-2.0 * u1.ln()).sqrt(), std::f64::consts::TAU * u2)
}

/// Uniform in [−1, 1) for counter `(a, b)`.
#[inline]
pub fn symmetric(key: u64, a: u64, b: u64) -> f32 {
    ((bits(key, a, b) >> 40) as f64 * (2.0 / (1u64 << 24) as f64) - 1.0) as f32
}

/// Fills `out[k] = gauss(key, a, b0 + k)`.
pub fn fill_gauss(key: u64, a: u64, b0: u64, out: &mut [f32]) {
    // Whole pairs drawn once (each draw gives an even and an odd counter), the ends one by one.
    let lead = ((b0 & 1) as usize).min(out.len());
    for (k, o) in out.iter_mut().enumerate().take(lead) {
        *o = gauss(key, a, b0 + k as u64);
    }
    let body = (out.len().saturating_sub(lead)) / 2 * 2;
    for (k, pair) in out[lead..lead + body].chunks_exact_mut(2).enumerate() {
        let (c, s) = gauss_pair(key, a, b0 + (lead + 2 * k) as u64);
        pair[0] = c;
        pair[1] = s;
    }
    for (k, o) in out.iter_mut().enumerate().skip(lead + body) {
        *o = gauss(key, a, b0 + k as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_moments() {
        let k = key(7, Stream::Generators);
        let n = 200_000u64;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for b in 0..n {
            let g = gauss(k, b / 100, b % 100) as f64;
            s1 += g;
            s2 += g * g;
        }
        let mean = s1 / n as f64;
        let var = s2 / n as f64 - mean * mean;
        // 5 standard errors of the mean (1/sqrt(n) ≈ 0.0022) and of the variance (≈ 0.0032).
        assert!(mean.abs() < 0.011, "mean {mean}");
        assert!((var - 1.0).abs() < 0.016, "var {var}");
    }

    #[test]
    fn fill_gauss_is_gauss_at_every_offset() {
        let k = key(3, Stream::Inputs);
        for b0 in 0..4u64 {
            for len in 0..7usize {
                let mut out = vec![0.0f32; len];
                fill_gauss(k, 11, b0, &mut out);
                for (i, &v) in out.iter().enumerate() {
                    assert_eq!(v.to_bits(), gauss(k, 11, b0 + i as u64).to_bits());
                }
            }
        }
    }

    #[test]
    fn streams_differ() {
        assert_ne!(
            gauss(key(0, Stream::Generators), 0, 0),
            gauss(key(0, Stream::Inputs), 0, 0)
        );
        assert_eq!(
            gauss(key(3, Stream::Inputs), 5, 9),
            gauss(key(3, Stream::Inputs), 5, 9)
        );
    }
}
