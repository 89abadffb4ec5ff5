// support_adjoint: A_Tᵀ r over a block of rows, one workgroup per support entry.
//
//   part[p] = Σ_r X[r, cols[p]] · bit(run_of[p], m_row0 + r) · res[r_row0 + r]
//   out[p]  = (accumulate ? out[p] : 0) + part[p]
//
// Each of the 64 invocations sums rows lid, lid + 64, … with Kahan compensation (WGSL has no
// f64), then the workgroup adds the 64 partials in a fixed tree; the CPU twin does the same.
// Bindings:
//   0 uniform  Params  rows, x_stride, x_row0, words, len (support size), r_row0, m_row0,
//                      accumulate (0/1)
//   1 storage  x       X column-major: X[r, i] = x[i * x_stride + x_row0 + r]
//   2 storage  cols    column i of each support entry
//   3 storage  run_of  run (neuron of the support) of each entry
//   4 storage  res     residual
//   5 storage  bits    bits[k * words + row / 32]
//   6 storage  out     output, one value per support entry
// Dispatch: (min(len, 65535), ceil(len / 65535), 1); p = wg.y * 65535 + wg.x.

struct Params {
    rows: u32,
    x_stride: u32,
    x_row0: u32,
    words: u32,
    len: u32,
    r_row0: u32,
    m_row0: u32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cols: array<u32>;
@group(0) @binding(3) var<storage, read> run_of: array<u32>;
@group(0) @binding(4) var<storage, read> res: array<f32>;
@group(0) @binding(5) var<storage, read> bits: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let p = wg.y * 65535u + wg.x;
    if (p >= params.len) {
        return;
    }
    let col = cols[p] * params.x_stride + params.x_row0;
    let k = run_of[p];
    var sum = 0.0;
    var comp = 0.0;
    for (var r = lid; r < params.rows; r = r + 64u) {
        let row = params.m_row0 + r;
        let word = bits[k * params.words + row / 32u];
        if (((word >> (row % 32u)) & 1u) == 1u) {
            let term = x[col + r] * res[params.r_row0 + r] - comp;
            let t = sum + term;
            comp = (t - sum) - term;
            sum = t;
        }
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] = partial[lid] + partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        var total = partial[0];
        if (params.accumulate == 1u) {
            total = out[p] + total;
        }
        out[p] = total;
    }
}
