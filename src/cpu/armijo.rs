//! CPU twin of `shaders/armijo.wgsl`: the device's scalar decisions with its exact arithmetic —
//! double-f32 sums (fma-split squares, two-sum), 64 lanes per workgroup grid-strided over the
//! vector, fixed trees — so a test can hold the kernels to it operation for operation, and hold
//! it to the f64 rules of [`crate::backend::rules`] within rounding.

/// Armijo trials per inner step (as `rules::TRIALS`).
pub const TRIALS: usize = 11;

/// The device state (mirrors `State` of the shader, without padding).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct State {
    pub mu: f32,
    /// 0: nothing moved (g = 0); 1: a trial was accepted; 2: reset to z₀.
    pub action: u32,
    pub trials: u32,
    pub resets: u32,
    pub accepts: u32,
    pub f: [f32; 2],
    pub f0: [f32; 2],
    pub gg: [f32; 2],
    pub qq: [f32; 2],
}

fn two_sum(x: f32, y: f32) -> [f32; 2] {
    let s = x + y;
    let v = s - x;
    [s, (x - (s - v)) + (y - v)]
}

/// `x + y` of two double-f32 pairs.
pub fn dd_add(x: [f32; 2], y: [f32; 2]) -> [f32; 2] {
    let s = two_sum(x[0], y[0]);
    let lo = s[1] + (x[1] + y[1]);
    let hi = s[0] + lo;
    [hi, lo - (hi - s[0])]
}

fn square(e: f32) -> [f32; 2] {
    let p = e * e;
    [p, e.mul_add(e, -p)]
}

fn tree(mut lanes: [[f32; 2]; 64]) -> [f32; 2] {
    let mut stride = 32;
    while stride > 0 {
        for l in 0..stride {
            lanes[l] = dd_add(lanes[l], lanes[l + stride]);
        }
        stride /= 2;
    }
    lanes[0]
}

/// The pair as an f64.
pub fn value(p: [f32; 2]) -> f64 {
    p[0] as f64 + p[1] as f64
}

/// Entry `norm`: one pair per workgroup of `Σ a²`.
pub fn norm(a: &[f32], groups: usize) -> Vec<[f32; 2]> {
    (0..groups)
        .map(|g| {
            let mut lanes = [[0.0f32; 2]; 64];
            for (lane, acc) in lanes.iter_mut().enumerate() {
                let mut i = g * 64 + lane;
                while i < a.len() {
                    *acc = dd_add(*acc, square(a[i]));
                    i += groups * 64;
                }
            }
            tree(lanes)
        })
        .collect()
}

/// Entry `trials`: `part[j·groups + g]` for the 11 step sizes `mu·2⁻ʲ`.
pub fn trials(r: &[f32], q: &[f32], mu: f32, groups: usize) -> Vec<[f32; 2]> {
    let mut part = vec![[0.0f32; 2]; TRIALS * groups];
    for g in 0..groups {
        let mut lanes = [[[0.0f32; 2]; 64]; TRIALS];
        for lane in 0..64 {
            let mut i = g * 64 + lane;
            while i < r.len() {
                let mut m = mu;
                for acc in lanes.iter_mut() {
                    acc[lane] = dd_add(acc[lane], square((-m).mul_add(q[i], r[i])));
                    m *= 0.5;
                }
                i += groups * 64;
            }
        }
        for (j, acc) in lanes.into_iter().enumerate() {
            part[j * groups + g] = tree(acc);
        }
    }
    part
}

/// `Σ_g part[base + g]` in the device's order.
pub fn total(part: &[[f32; 2]], base: usize, groups: usize) -> [f32; 2] {
    let mut lanes = [[0.0f32; 2]; 64];
    for (lane, acc) in lanes.iter_mut().enumerate() {
        let mut g = lane;
        while g < groups {
            *acc = dd_add(*acc, part[base + g]);
            g += 64;
        }
    }
    tree(lanes)
}

/// Entry `finish`.
pub fn finish(s: &mut State, part: &[[f32; 2]], groups: usize, what: u32) {
    let sum = total(part, 0, groups);
    match what {
        0 => {
            s.f = sum;
            s.f0 = sum;
        }
        1 => s.gg = sum,
        _ => {
            s.qq = sum;
            s.mu = (s.gg[0] + s.gg[1]) / ((sum[0] + sum[1]) + 1e-8);
        }
    }
}

/// Entry `decide`.
pub fn decide(s: &mut State, part: &[[f32; 2]], groups: usize) {
    let gg = s.gg[0] + s.gg[1];
    let mut m = s.mu;
    let mut hit = None;
    for j in 0..TRIALS {
        let fj = total(part, j * groups, groups);
        let diff = dd_add(fj, [-s.f[0], -s.f[1]]);
        if diff[0] + diff[1] <= -0.9 * m * gg {
            hit = Some((j, fj));
            break;
        }
        m *= 0.5;
    }
    if gg == 0.0 {
        s.action = 0;
    } else if let Some((j, fj)) = hit {
        s.action = 1;
        s.mu = m;
        s.f = fj;
        s.trials += j as u32 + 1;
        s.accepts += 1;
    } else {
        s.action = 2;
        s.mu = m;
        s.f = s.f0;
        s.trials += TRIALS as u32;
        s.resets += 1;
    }
}

/// Entry `update`.
pub fn update(s: &State, a: &mut [f32], b: &[f32], c: &[f32]) {
    match s.action {
        1 => {
            for (ai, &bi) in a.iter_mut().zip(b) {
                *ai = (-s.mu).mul_add(bi, *ai);
            }
        }
        2 => a.copy_from_slice(&c[..a.len()]),
        _ => {}
    }
}
