// support_forward: A_T z over a block of rows, from the columns of X the support touches and the
// activation bits of its neurons; no n × |T| matrix.
//
//   out[out_row0 + r] = Σ_k bit(k, m_row0 + r) · ( Σ_{p ∈ run k} z[p] · X[r, cols[p]] )
//                       − (sub_y ? y[out_row0 + r] : 0)          (the residual A_T z − y)
//
// Runs are the support's neurons (consecutive entries sharing a neuron), in order; the inner sum
// is accumulated with fma in p order, the outer in k order, as the CPU twin.
// Bindings:
//   0 uniform  Params  rows, x_stride, x_row0, words (mask words per neuron, all n rows),
//                      runs, out_row0, m_row0 (global row of the block's first row), sub_y
//   1 storage  x          X column-major: X[r, i] = x[i * x_stride + x_row0 + r]
//   2 storage  cols       column i of each support entry
//   3 storage  run_start  runs + 1 offsets into cols / z
//   4 storage  z          support values
//   5 storage  bits       bits[k * words + row / 32]
//   6 storage  out        output
//   7 storage  y          targets (read when sub_y = 1)
// Dispatch: (ceil(rows / 64), 1, 1), one invocation per row.

struct Params {
    rows: u32,
    x_stride: u32,
    x_row0: u32,
    words: u32,
    runs: u32,
    out_row0: u32,
    m_row0: u32,
    sub_y: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cols: array<u32>;
@group(0) @binding(3) var<storage, read> run_start: array<u32>;
@group(0) @binding(4) var<storage, read> z: array<f32>;
@group(0) @binding(5) var<storage, read> bits: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= params.rows) {
        return;
    }
    let row = params.m_row0 + r;
    var acc = 0.0;
    for (var k = 0u; k < params.runs; k = k + 1u) {
        let word = bits[k * params.words + row / 32u];
        if (((word >> (row % 32u)) & 1u) == 0u) {
            continue;
        }
        var s = 0.0;
        for (var p = run_start[k]; p < run_start[k + 1u]; p = p + 1u) {
            s = fma(z[p], x[cols[p] * params.x_stride + params.x_row0 + r], s);
        }
        acc = acc + s;
    }
    var yv = 0.0;
    if (params.sub_y == 1u) {
        yv = y[params.out_row0 + r];
    }
    out[params.out_row0 + r] = acc - yv;
}
