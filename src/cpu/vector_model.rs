//! The vector-output model's passes on the CPU (SPEC §3): the engine's GEMM path
//! ([`forward`], [`step`]) and the CPU twins of `shaders/vector_model.wgsl` (same layouts, same
//! f32 `fma` order).
//!
//! For the live neurons of an operator, with W1 (t × d) and W2 (t × k) blocks:
//!
//! ```text
//! H  = M ∘ (X W1ᵀ)                 n × t, M the operator's activation masks
//! Ŷ  = H W2                        n × k
//! R  = ∂loss/∂Ŷ                    MSE (Ŷ − Y)/n, or (softmax(Ŷ) − Y)/n
//! G2 = Hᵀ R                        t × k
//! G1 = (M ∘ (R W2ᵀ))ᵀ X            t × d
//! ```
//!
//! The engine path tiles the neurons so that it holds `rows × tile` intermediates, not `n × t`.

use crate::problem::model::{residual, Blocks, Loss, VectorStep};
use crate::problem::operator::Operator;
use crate::problem::stream::MAX_TILE;
use gemm::{gemm, Parallelism};

/// Neurons per tile of the engine path.
fn tile_width(n: usize) -> usize {
    // Keep a tile's two n × tile intermediates near 64 MiB.
    ((8 << 20) / n.max(1)).clamp(1, MAX_TILE * 4)
}

/// `Z = X W1ᵀ` for the blocks' neurons `range`, masked: `h[jj·n + r]`.
fn hidden_tile(op: &Operator, b: &Blocks, range: std::ops::Range<usize>, h: &mut [f32]) {
    let (n, d, t) = (op.n(), op.d(), range.len());
    let h = &mut h[..n * t];
    if t == 0 {
        return;
    }
    // SAFETY: H is n × t column-major (h[jj·n + r]); X is n × d column-major (xt[i·ld + r]);
    // W1ᵀ is d × t with (i, jj) at w1[(range.start + jj)·d + i]; all in bounds.
    unsafe {
        gemm(
            n,
            t,
            d,
            h.as_mut_ptr(),
            n as isize,
            1,
            false,
            op.data().xt().as_ptr(),
            op.data().ld() as isize,
            1,
            b.w1[range.start * d..].as_ptr(),
            d as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::Rayon(0),
        );
    }
    let mut g = vec![0.0f32; n];
    for (jj, &j) in b.live[range].iter().enumerate() {
        op.preactivation(j, 0, &mut g);
        for (v, &gz) in h[jj * n..(jj + 1) * n].iter_mut().zip(&g) {
            if gz <= 0.0 {
                *v = 0.0;
            }
        }
    }
}

/// `Ŷ += H W2` for the tile `range` (Ŷ n × k row-major).
fn add_output(
    n: usize,
    k: usize,
    h: &[f32],
    b: &Blocks,
    range: std::ops::Range<usize>,
    y: &mut [f32],
) {
    for (jj, col) in h.chunks(n.max(1)).take(range.len()).enumerate() {
        let w2 = &b.w2[(range.start + jj) * k..(range.start + jj + 1) * k];
        for (r, &hv) in col.iter().enumerate() {
            if hv != 0.0 {
                for c in 0..k {
                    y[r * k + c] += hv * w2[c];
                }
            }
        }
    }
}

/// `Ŷ` (n × k row-major) of the blocks under the operator's masks.
pub fn forward(op: &Operator, b: &Blocks, k: usize) -> Vec<f32> {
    let n = op.n();
    let t = b.live.len();
    let tw = tile_width(n).min(t.max(1));
    let mut h = vec![0.0f32; n * tw];
    let mut y = vec![0.0f32; n * k];
    for lo in (0..t).step_by(tw) {
        let range = lo..(lo + tw).min(t);
        hidden_tile(op, b, range.clone(), &mut h);
        add_output(n, k, &h, b, range, &mut y);
    }
    y
}

/// One step of the chain rule: the residual at `cur`, the gradients at `at` (default `cur`) and
/// the candidates `at − α G`.
pub fn step(
    op: &Operator,
    targets: &[f32],
    k: usize,
    loss: Loss,
    cur: &Blocks,
    at: Option<&Blocks>,
    alpha: f32,
) -> VectorStep {
    let (n, d) = (op.n(), op.d());
    let yhat = forward(op, cur, k);
    let (r, loss) = residual(&yhat, targets, k, loss);
    drop(yhat);
    let b = at.unwrap_or(cur);
    let t = b.live.len();
    let tw = tile_width(n).min(t.max(1));
    let mut h = vec![0.0f32; n * tw];
    let mut p = vec![0.0f32; n * tw];
    let mut mask = vec![0.0f32; n];
    let mut w1 = b.w1.clone();
    let mut w2 = b.w2.clone();
    for lo in (0..t).step_by(tw) {
        let range = lo..(lo + tw).min(t);
        let tt = range.len();
        hidden_tile(op, b, range.clone(), &mut h);
        for (jj, &j) in b.live[range.clone()].iter().enumerate() {
            let at = lo + jj;
            let mut g2 = vec![0.0f32; k];
            for (row, &hv) in h[jj * n..(jj + 1) * n].iter().enumerate() {
                if hv != 0.0 {
                    for c in 0..k {
                        g2[c] += hv * r[row * k + c];
                    }
                }
            }
            for c in 0..k {
                w2[at * k + c] -= alpha * g2[c];
            }
            op.preactivation(j, 0, &mut mask);
            let w2j = &b.w2[at * k..(at + 1) * k];
            for (row, pv) in p[jj * n..(jj + 1) * n].iter_mut().enumerate() {
                *pv = if mask[row] > 0.0 {
                    (0..k).map(|c| r[row * k + c] * w2j[c]).sum()
                } else {
                    0.0
                };
            }
        }
        let mut g1 = vec![0.0f32; tt * d];
        // SAFETY: G1 is tt × d row-major (g1[jj·d + i]); Pᵀ is tt × n with (jj, r) at p[jj·n + r];
        // X is n × d at xt[i·ld + r]; all in bounds.
        unsafe {
            gemm(
                tt,
                d,
                n,
                g1.as_mut_ptr(),
                1,
                d as isize,
                false,
                p.as_ptr(),
                1,
                n as isize,
                op.data().xt().as_ptr(),
                op.data().ld() as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::Rayon(0),
            );
        }
        for (w, g) in w1[lo * d..(lo + tt) * d].iter_mut().zip(&g1) {
            *w -= alpha * g;
        }
    }
    VectorStep { loss, w1, w2 }
}

/// The layout shared by the twins: the batch's n rows, the tile's t neurons, k outputs; bits of
/// the whole batch, `bit(jj, g) = bits[jj·words + g/32] >> (g % 32) & 1`.
#[derive(Clone, Copy, Debug)]
pub struct TileLayout<'a> {
    pub n: usize,
    pub tile: usize,
    pub k: usize,
    pub words: usize,
    pub bits: &'a [u32],
}

impl TileLayout<'_> {
    #[inline]
    fn bit(&self, jj: usize, g: usize) -> bool {
        (self.bits[jj * self.words + g / 32] >> (g % 32)) & 1 == 1
    }
}

/// Twin of `vector_model.wgsl::hidden` for one block of `rows` rows starting at batch row `row0`:
/// `hq[jj·n + row0 + r] = bit · Σ_i X[r, i] w1[jj·d + i]` with `X[r, i] = x[i·x_stride + x_row0 + r]`.
#[allow(clippy::too_many_arguments)]
pub fn hidden_twin(
    l: &TileLayout<'_>,
    x: &[f32],
    x_stride: usize,
    x_row0: usize,
    rows: usize,
    row0: usize,
    d: usize,
    w1: &[f32],
    hq: &mut [f32],
) {
    for r in 0..rows {
        let g = row0 + r;
        for jj in 0..l.tile {
            let mut z = 0.0f32;
            for i in 0..d {
                z = x[i * x_stride + x_row0 + r].mul_add(w1[jj * d + i], z);
            }
            hq[jj * l.n + g] = if l.bit(jj, g) { z } else { 0.0 };
        }
    }
}

/// Twin of `vector_model.wgsl::output`: `out[c·n + g] (+)= Σ_jj hq[jj·n + g] w2[jj·k + c]`.
pub fn output_twin(l: &TileLayout<'_>, hq: &[f32], w2: &[f32], accumulate: bool, out: &mut [f32]) {
    for g in 0..l.n {
        for c in 0..l.k {
            let mut acc = if accumulate { out[c * l.n + g] } else { 0.0 };
            for jj in 0..l.tile {
                acc = hq[jj * l.n + g].mul_add(w2[jj * l.k + c], acc);
            }
            out[c * l.n + g] = acc;
        }
    }
}

/// Twin of `vector_model.wgsl::residual`: Ŷ in `out` (k × n column-major) becomes R; returns the
/// per-row losses.
pub fn residual_twin(n: usize, k: usize, loss: Loss, y: &[f32], out: &mut [f32]) -> Vec<f32> {
    let nf = n as f32;
    let mut lossv = vec![0.0f32; n];
    for g in 0..n {
        let mut total = 0.0f32;
        match loss {
            Loss::Mse => {
                for c in 0..k {
                    let e = out[c * n + g] - y[c * n + g];
                    out[c * n + g] = e / nf;
                    total = e.mul_add(e, total);
                }
                total *= 0.5;
            }
            Loss::CrossEntropy => {
                let mut mx = out[g];
                for c in 1..k {
                    mx = mx.max(out[c * n + g]);
                }
                let mut sum = 0.0f32;
                for c in 0..k {
                    sum += (out[c * n + g] - mx).exp();
                }
                for c in 0..k {
                    let p = (out[c * n + g] - mx).exp() / sum;
                    let yv = y[c * n + g];
                    out[c * n + g] = (p - yv) / nf;
                    if yv > 0.0 {
                        total -= yv * p.max(1e-30).ln();
                    }
                }
            }
        }
        lossv[g] = total;
    }
    lossv
}

/// Twin of `vector_model.wgsl::backprop`: `hq[jj·n + g] = bit · Σ_c R[c·n + g] w2[jj·k + c]`.
pub fn backprop_twin(l: &TileLayout<'_>, r: &[f32], w2: &[f32], hq: &mut [f32]) {
    for jj in 0..l.tile {
        for g in 0..l.n {
            let mut acc = 0.0f32;
            if l.bit(jj, g) {
                for c in 0..l.k {
                    acc = r[c * l.n + g].mul_add(w2[jj * l.k + c], acc);
                }
            }
            hq[jj * l.n + g] = acc;
        }
    }
}
