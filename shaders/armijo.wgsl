// armijo: the scalar decisions of a step taken on the device (SPEC §2 steps 1 and 3): norms, the
// normalized step size, all Armijo trials of an inner step in one O(n) pass, the acceptance and
// reset rule, and the updates of z and r. The solver's state lives in one `State` buffer, so no
// decision goes back to the host.
//
// Sums are double-f32 (a float pair hi + lo): each square is split exactly by fma into p + e,
// p is added with Knuth's two-sum and e into the low word, so a sum keeps ~44 bits (the host
// compares in f64). Lanes of a workgroup add their pairs in a fixed tree; the grid-strided
// workgroups write one pair each, and a single workgroup adds those in a fixed tree.
//   entry `norm`:    part[g] = Σ_{i ≡ g·64 + lane (mod groups·64)} a[i]²
//   entry `trials`:  part[j·groups + g] = Σ (a[i] − μ2⁻ʲ b[i])², j = 0..10, μ = state.mu
//   entry `finish`:  total = Σ_g part[g]; what = 0: state.f = state.f0 = total (the start);
//                    1: state.gg = total; 2: state.qq = total and state.mu = gg / (qq + 1e-8)
//   entry `decide`:  with gg = 0 nothing moves (action 0); else the first j with
//                    f_j − f ≤ −0.9 μ2⁻ʲ gg is accepted (action 1: mu = μ2⁻ʲ, f = f_j), and when
//                    none is, action 2: mu = μ2⁻¹¹, f = f0, resets += 1. trials counts the tests.
//   entry `update`:  action 1: a[i] = a[i] − mu · b[i]; action 2: a[i] = c[i]   (i < len)
// Bindings:
//   0 uniform  Params  len, groups, what
//   1 storage  state   State (read-write)
//   2 storage  part    partial pairs, groups (× 11 for trials)
//   3 storage  a       the vector normed, tried (r) or updated (z or r)
//   4 storage  b       the direction (trials: q = A_T g; update: g or q)
//   5 storage  c       the reset value (z0 or r0)
// Dispatch: norm and trials (groups, 1, 1); finish and decide (1, 1, 1);
//           update (min(W, 65535), ceil(W / 65535), 1), W = ceil(len / 64). All workgroups have
//           64 invocations.
// The CPU twin is `cpu::armijo`.

struct Params {
    len: u32,
    groups: u32,
    what: u32,
    _pad: u32,
}

struct State {
    mu: f32,
    action: u32,
    trials: u32,
    resets: u32,
    accepts: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
    f: vec2<f32>,
    f0: vec2<f32>,
    gg: vec2<f32>,
    qq: vec2<f32>,
}

const TRIALS: u32 = 11u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> state: State;
@group(0) @binding(2) var<storage, read_write> part: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> a: array<f32>;
@group(0) @binding(4) var<storage, read> b: array<f32>;
@group(0) @binding(5) var<storage, read> c: array<f32>;

var<workgroup> pairs: array<vec2<f32>, 64>;

fn two_sum(x: f32, y: f32) -> vec2<f32> {
    let s = x + y;
    let v = s - x;
    return vec2<f32>(s, (x - (s - v)) + (y - v));
}

fn dd_add(x: vec2<f32>, y: vec2<f32>) -> vec2<f32> {
    let s = two_sum(x.x, y.x);
    let lo = s.y + (x.y + y.y);
    let hi = s.x + lo;
    return vec2<f32>(hi, lo - (hi - s.x));
}

// e² as a pair, exactly: p = fl(e·e), fma(e, e, −p) its rounding error.
fn square(e: f32) -> vec2<f32> {
    let p = e * e;
    return vec2<f32>(p, fma(e, e, -p));
}

// Adds the 64 pairs of `pairs` in a fixed tree; the result is in pairs[0].
fn tree(lane: u32) {
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride = stride / 2u) {
        if (lane < stride) {
            pairs[lane] = dd_add(pairs[lane], pairs[lane + stride]);
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(64)
fn norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    var acc = vec2<f32>(0.0, 0.0);
    for (var i = wg.x * 64u + lane; i < params.len; i = i + params.groups * 64u) {
        acc = dd_add(acc, square(a[i]));
    }
    pairs[lane] = acc;
    tree(lane);
    if (lane == 0u) {
        part[wg.x] = pairs[0];
    }
}

@compute @workgroup_size(64)
fn trials(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    var acc: array<vec2<f32>, 11>;
    for (var j = 0u; j < TRIALS; j = j + 1u) {
        acc[j] = vec2<f32>(0.0, 0.0);
    }
    let mu = state.mu;
    for (var i = wg.x * 64u + lane; i < params.len; i = i + params.groups * 64u) {
        let r = a[i];
        let q = b[i];
        var m = mu;
        for (var j = 0u; j < TRIALS; j = j + 1u) {
            acc[j] = dd_add(acc[j], square(fma(-m, q, r)));
            m = m * 0.5;
        }
    }
    for (var j = 0u; j < TRIALS; j = j + 1u) {
        pairs[lane] = acc[j];
        tree(lane);
        if (lane == 0u) {
            part[j * params.groups + wg.x] = pairs[0];
        }
        workgroupBarrier();
    }
}

// Σ_g part[base + g] over the grid's workgroups, in a fixed order (lane-strided, then the tree).
fn total(lane: u32, base: u32) -> vec2<f32> {
    var acc = vec2<f32>(0.0, 0.0);
    for (var g = lane; g < params.groups; g = g + 64u) {
        acc = dd_add(acc, part[base + g]);
    }
    pairs[lane] = acc;
    tree(lane);
    let out = pairs[0];
    workgroupBarrier();
    return out;
}

@compute @workgroup_size(64)
fn finish(@builtin(local_invocation_index) lane: u32) {
    let sum = total(lane, 0u);
    if (lane != 0u) {
        return;
    }
    if (params.what == 0u) {
        state.f = sum;
        state.f0 = sum;
    } else if (params.what == 1u) {
        state.gg = sum;
    } else {
        state.qq = sum;
        state.mu = (state.gg.x + state.gg.y) / ((sum.x + sum.y) + 1e-8);
    }
}

// Every lane reads the same totals, so every lane takes the same decision; lane 0 stores it.
@compute @workgroup_size(64)
fn decide(@builtin(local_invocation_index) lane: u32) {
    let gg = state.gg.x + state.gg.y;
    let f = state.f;
    var m = state.mu;
    var hit = TRIALS;
    var f_hit = vec2<f32>(0.0, 0.0);
    for (var j = 0u; j < TRIALS; j = j + 1u) {
        let fj = total(lane, j * params.groups);
        if (hit == TRIALS) {
            let diff = dd_add(fj, -f);
            if (diff.x + diff.y <= -0.9 * m * gg) {
                hit = j;
                f_hit = fj;
            } else {
                m = m * 0.5;
            }
        }
    }
    if (lane != 0u) {
        return;
    }
    if (gg == 0.0) {
        state.action = 0u;
    } else if (hit < TRIALS) {
        state.action = 1u;
        state.mu = m;
        state.f = f_hit;
        state.trials = state.trials + hit + 1u;
        state.accepts = state.accepts + 1u;
    } else {
        state.action = 2u;
        state.mu = m;
        state.f = state.f0;
        state.trials = state.trials + TRIALS;
        state.resets = state.resets + 1u;
    }
}

@compute @workgroup_size(64)
fn update(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wg.y * 65535u + wg.x) * 64u + lid;
    let action = state.action;
    if (i >= params.len || action == 0u) {
        return;
    }
    if (action == 1u) {
        a[i] = fma(-state.mu, b[i], a[i]);
    } else {
        a[i] = c[i];
    }
}
