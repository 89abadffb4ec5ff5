//! Eight-lane building blocks of the CPU kernels, written on fixed `[f32; 8]` arrays so that the
//! compiler maps each to one 256-bit operation inside the AVX2+FMA versions of their callers
//! (callers are `#[multiversion]`; these inline into them). Mask bits are expanded eight at a time
//! through [`EXPAND`]; rows are walked one 64-bit mask word (64 rows) at a time.
#![allow(
    clippy::needless_range_loop,
    reason = "indexed lane loops over fixed [f32; 8] arrays are what the vectorizer maps to SIMD"
)]

/// `EXPAND[b][l]` is bit l of byte b as 0.0 or 1.0.
pub static EXPAND: [[f32; 8]; 256] = {
    let mut t = [[0.0f32; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut l = 0;
        while l < 8 {
            t[b][l] = ((b >> l) & 1) as f32;
            l += 1;
        }
        b += 1;
    }
    t
};

#[inline(always)]
fn lanes(v: &[f32]) -> &[f32; 8] {
    v.try_into().expect("8 lanes")
}

#[inline(always)]
fn lanes_mut(v: &mut [f32]) -> &mut [f32; 8] {
    v.try_into().expect("8 lanes")
}

/// The 0/1 factors of rows `8g..8g+8` of a mask (rows counted from the start of `words`).
#[inline(always)]
fn factors(words: &[u64], g: usize) -> &'static [f32; 8] {
    &EXPAND[((words[g / 8] >> ((g % 8) * 8)) & 0xFF) as usize]
}

/// `out[r] += a · v[r]` where row r's mask bit is set.
#[inline(always)]
pub fn masked_axpy(words: &[u64], a: f32, v: &[f32], out: &mut [f32]) {
    let full = v.len() / 8;
    for g in 0..full {
        let m = factors(words, g);
        let x = lanes(&v[8 * g..8 * g + 8]);
        let o = lanes_mut(&mut out[8 * g..8 * g + 8]);
        for l in 0..8 {
            o[l] += m[l] * (a * x[l]);
        }
    }
    for r in 8 * full..v.len() {
        out[r] += factors(words, full)[r % 8] * (a * v[r]);
    }
}

/// `Σ_r bit(r) · x[r] · v[r]`, eight f32 lanes summed in f64 at the end.
#[inline(always)]
pub fn masked_dot(words: &[u64], x: &[f32], v: &[f32]) -> f64 {
    let mut acc = [0.0f32; 8];
    let full = x.len() / 8;
    for g in 0..full {
        let m = factors(words, g);
        let a = lanes(&x[8 * g..8 * g + 8]);
        let b = lanes(&v[8 * g..8 * g + 8]);
        for l in 0..8 {
            acc[l] += m[l] * (a[l] * b[l]);
        }
    }
    for r in 8 * full..x.len() {
        acc[r % 8] += factors(words, full)[r % 8] * (x[r] * v[r]);
    }
    acc.iter().map(|&v| v as f64).sum()
}

/// Two neurons at once: `out[r] += bit₁(r)·a₁·v₁[r] + bit₂(r)·a₂·v₂[r]` (halves the traffic on
/// `out`; the common case is a support with one weight per neuron).
#[inline(always)]
pub fn masked_axpy2(
    w1: &[u64],
    a1: f32,
    v1: &[f32],
    w2: &[u64],
    a2: f32,
    v2: &[f32],
    out: &mut [f32],
) {
    let full = out.len() / 8;
    for g in 0..full {
        let (m1, m2) = (factors(w1, g), factors(w2, g));
        let x1 = lanes(&v1[8 * g..8 * g + 8]);
        let x2 = lanes(&v2[8 * g..8 * g + 8]);
        let o = lanes_mut(&mut out[8 * g..8 * g + 8]);
        for l in 0..8 {
            o[l] += m1[l] * (a1 * x1[l]) + m2[l] * (a2 * x2[l]);
        }
    }
    for r in 8 * full..out.len() {
        out[r] += factors(w1, full)[r % 8] * (a1 * v1[r]) + factors(w2, full)[r % 8] * (a2 * v2[r]);
    }
}

/// Two neurons at once: `(Σ bit₁·x₁·v, Σ bit₂·x₂·v)`, sharing the loads of `v` and giving the
/// adder two independent chains.
#[inline(always)]
pub fn masked_dot2(w1: &[u64], x1: &[f32], w2: &[u64], x2: &[f32], v: &[f32]) -> (f64, f64) {
    let (mut acc1, mut acc2) = ([0.0f32; 8], [0.0f32; 8]);
    let full = v.len() / 8;
    for g in 0..full {
        let (m1, m2) = (factors(w1, g), factors(w2, g));
        let a1 = lanes(&x1[8 * g..8 * g + 8]);
        let a2 = lanes(&x2[8 * g..8 * g + 8]);
        let b = lanes(&v[8 * g..8 * g + 8]);
        for l in 0..8 {
            acc1[l] += m1[l] * (a1[l] * b[l]);
            acc2[l] += m2[l] * (a2[l] * b[l]);
        }
    }
    for r in 8 * full..v.len() {
        acc1[r % 8] += factors(w1, full)[r % 8] * (x1[r] * v[r]);
        acc2[r % 8] += factors(w2, full)[r % 8] * (x2[r] * v[r]);
    }
    let sum = |acc: [f32; 8]| acc.iter().map(|&v| v as f64).sum::<f64>();
    (sum(acc1), sum(acc2))
}

/// `out[r] = bit(r) · v[r]`.
#[inline(always)]
pub fn masked_copy(words: &[u64], v: &[f32], out: &mut [f32]) {
    let full = v.len() / 8;
    for g in 0..full {
        let m = factors(words, g);
        let x = lanes(&v[8 * g..8 * g + 8]);
        let o = lanes_mut(&mut out[8 * g..8 * g + 8]);
        for l in 0..8 {
            o[l] = m[l] * x[l];
        }
    }
    for r in 8 * full..v.len() {
        out[r] = factors(words, full)[r % 8] * v[r];
    }
}

/// `Σ a[k]·b[k]` in eight f32 lanes, summed in f64 at the end (for chunks of a few thousand).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0.0f32; 8];
    let full = a.len() / 8;
    for g in 0..full {
        let x = lanes(&a[8 * g..8 * g + 8]);
        let y = lanes(&b[8 * g..8 * g + 8]);
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    for r in 8 * full..a.len() {
        acc[r % 8] += a[r] * b[r];
    }
    acc.iter().map(|&v| v as f64).sum()
}

/// Packs `z > 0` (strict) into mask words, 64 rows per word.
#[inline(always)]
pub fn pack(z: &[f32], out: &mut [u64]) {
    for (w, chunk) in out.iter_mut().zip(z.chunks(64)) {
        let mut word = 0u64;
        let full = chunk.len() / 8;
        for g in 0..full {
            let c = lanes(&chunk[8 * g..8 * g + 8]);
            let mut byte = 0u64;
            for l in 0..8 {
                byte |= ((c[l] > 0.0) as u64) << l;
            }
            word |= byte << (8 * g);
        }
        for r in 8 * full..chunk.len() {
            word |= ((chunk[r] > 0.0) as u64) << r;
        }
        *w = word;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_kernels_match_scalar_definitions() {
        let len: usize = 8 * 9 + 5; // a partial word and a partial group
        let v: Vec<f32> = (0..len).map(|k| (k as f32 * 0.37).sin()).collect();
        let x: Vec<f32> = (0..len).map(|k| (k as f32 * 0.11).cos()).collect();
        let mut words = vec![0u64; len.div_ceil(64)];
        pack(&v, &mut words);
        let bit = |r: usize| (words[r / 64] >> (r % 64)) & 1 == 1;
        for (r, &vr) in v.iter().enumerate() {
            assert_eq!(bit(r), vr > 0.0, "row {r}");
        }
        let mut out = x.clone();
        masked_axpy(&words, 2.0, &v, &mut out);
        let mut copy = vec![0.0; len];
        masked_copy(&words, &x, &mut copy);
        let mut want_dot = 0.0f64;
        for r in 0..len {
            let on = if bit(r) { 1.0 } else { 0.0 };
            assert_eq!(out[r], x[r] + on * (2.0 * v[r]), "axpy row {r}");
            assert_eq!(copy[r], on * x[r], "copy row {r}");
            want_dot += on as f64 * (x[r] as f64) * (v[r] as f64);
        }
        assert!((masked_dot(&words, &x, &v) - want_dot).abs() < 1e-5);
        // The paired versions with the same neuron twice equal twice / the same as the single ones.
        let mut out2 = x.clone();
        masked_axpy2(&words, 1.0, &v, &words, 1.0, &v, &mut out2);
        let (d1, d2) = masked_dot2(&words, &x, &words, &x, &v);
        assert_eq!(d1, d2);
        assert!((d1 - want_dot).abs() < 1e-5);
        for r in 0..len {
            let on = if bit(r) { 1.0 } else { 0.0 };
            assert_eq!(out2[r], x[r] + (on * v[r] + on * v[r]), "axpy2 row {r}");
        }
        let want: f64 = x.iter().zip(&v).map(|(&a, &b)| a as f64 * b as f64).sum();
        assert!((dot(&x, &v) - want).abs() < 1e-5);
    }
}
