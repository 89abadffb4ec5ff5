// support_adjoint: A_Tᵀ r over a block of rows, one workgroup per four support entries.
//
//   part[p] = Σ_r X[r, cols[p]] · bit(run_of[p], m_row0 + r) · res[r_row0 + r]
//   out[p]  = (accumulate ? out[p] : 0) + part[p]
//
// Each of the 64 invocations sums rows lid, lid + 64, … with Kahan compensation (WGSL has no
// f64), then the workgroup adds the 64 partials in a fixed tree; the CPU twin does the same.
// Bindings:
//   0 uniform  Params  rows, x_stride, x_row0, words, len (support size), r_row0, m_row0,
//                      accumulate (0/1)
//   1 storage  x       X column-major: X[r, i] = x[i * x_stride + x_row0 + r] (f32, or f16 with `--gpu-f16`)
//   2 storage  cols    column i of each support entry
//   3 storage  run_of  run (neuron of the support) of each entry
//   4 storage  res     residual
//   5 storage  bits    bits[k * words + row / 32]
//   6 storage  out     output, one value per support entry
// Dispatch: (min(g, 65535), ceil(g / 65535), 1) for g = ceil(len / 4) groups of four entries.

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
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
// Every read of X goes through `xat` (one value) or `xat4` (four rows of a column, at a vec4
// index; the column stride and the block's first row are multiples of 4): the f16-storage
// variant of the pipeline swaps these lines (see `gpu::shaders::x_f16_source`).
fn xat(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }
fn xat4(i: u32) -> vec4<f32> { return x[i]; }
@group(0) @binding(2) var<storage, read> cols: array<u32>;
@group(0) @binding(3) var<storage, read> run_of: array<u32>;
@group(0) @binding(4) var<storage, read> res: array<f32>;
@group(0) @binding(5) var<storage, read> bits: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<vec4<f32>, 64>;

// Each workgroup takes four consecutive support entries (e = 0..3: p = 4 · group + e), so each
// row's residual is read once for the four; every entry's sum is the same as alone.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let p0 = (wg.y * 65535u + wg.x) * 4u;
    if (p0 >= params.len) {
        return;
    }
    var col = vec4<u32>(0u);
    var k = vec4<u32>(0u);
    let live = vec4<bool>(true, p0 + 1u < params.len, p0 + 2u < params.len, p0 + 3u < params.len);
    for (var e = 0u; e < 4u; e = e + 1u) {
        if (live[e]) {
            col[e] = cols[p0 + e] * params.x_stride + params.x_row0;
            k[e] = run_of[p0 + e];
        }
    }
    var sum = vec4<f32>(0.0);
    var comp = vec4<f32>(0.0);
    for (var r = lid; r < params.rows; r = r + 64u) {
        let row = params.m_row0 + r;
        let rv = res[params.r_row0 + r];
        var on = vec4<bool>(false);
        var xv = vec4<f32>(0.0);
        for (var e = 0u; e < 4u; e = e + 1u) {
            if (live[e]) {
                let word = bits[k[e] * params.words + row / 32u];
                on[e] = ((word >> (row % 32u)) & 1u) == 1u;
                xv[e] = xat(col[e] + r);
            }
        }
        let term = xv * rv - comp;
        let t = sum + term;
        comp = select(comp, (t - sum) - term, on);
        sum = select(sum, t, on);
    }
    let sums = workgroup_sum(lid, sum);
    if (lid == 0u) {
        for (var e = 0u; e < 4u; e = e + 1u) {
            if (live[e]) {
                var total = sums[e];
                if (params.accumulate == 1u) {
                    total = out[p0 + e] + total;
                }
                out[p0 + e] = total;
            }
        }
    }
}

// The sum of `v` over the workgroup's 64 invocations, by a fixed tree (the CPU twin's order); every
// invocation gets it. `--gpu-subgroups` swaps this function for subgroup sums (see
// `gpu::shaders::subgroup_source`).
fn workgroup_sum(lid: u32, v: vec4<f32>) -> vec4<f32> {
    partial[lid] = v;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] = partial[lid] + partial[lid + stride];
        }
        workgroupBarrier();
    }
    return partial[0];
}
