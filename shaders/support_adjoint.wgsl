// support_adjoint: A_Tᵀ r over a block of rows, one workgroup per two support entries.
//
//   part[p] = Σ_r X[r, cols[p]] · bit(run_of[p], m_row0 + r) · res[r_row0 + r]
//   out[p]  = (accumulate ? out[p] : 0) + part[p]
//
// The rows go in groups of four (group g: rows 4g .. 4g + 3). Invocation l sums groups l, l + 64,
// … with one Kahan-compensated sum per row of the group (WGSL has no f64), adds its four sums in
// order, and the workgroup adds the 64 partials in a fixed tree; the CPU twin does the same.
// Each group is one vec4 load of X per entry and of the residual, and one mask word per entry
// (m_row0 is a multiple of 32); X's column stride and the block's first row are multiples of 4
// (see `xat4`), and so is r_row0.
// Bindings:
//   0 uniform  Params  rows, x_stride, x_row0, words, len (support size), r_row0, m_row0,
//                      accumulate (0/1)
//   1 storage  x       X column-major: X[r, i] = x[i * x_stride + x_row0 + r] (f32, or f16 with `--gpu-f16`)
//   2 storage  cols    column i of each support entry
//   3 storage  run_of  run (neuron of the support) of each entry
//   4 storage  res     residual, read as vec4 (rows past the block are read and not used)
//   5 storage  bits    bits[k * words + row / 32]
//   6 storage  out     output, one value per support entry
// Dispatch: (min(g, 65535), ceil(g / 65535), 1) for g = ceil(len / 2) pairs of entries.
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
@group(0) @binding(4) var<storage, read> res: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> bits: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<vec2<f32>, 64>;

// Each workgroup takes two consecutive support entries (e = 0, 1: p = 2 · group + e), so each
// group of rows' residual is read once for both; every entry's sum is the same as alone.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let p0 = (wg.y * 65535u + wg.x) * 2u;
    if (p0 >= params.len) {
        return;
    }
    let two = p0 + 1u < params.len;
    let col0 = cols[p0] * params.x_stride + params.x_row0;
    let k0 = run_of[p0] * params.words;
    var col1 = col0;
    var k1 = k0;
    if (two) {
        col1 = cols[p0 + 1u] * params.x_stride + params.x_row0;
        k1 = run_of[p0 + 1u] * params.words;
    }
    var sum0 = vec4<f32>(0.0);
    var comp0 = vec4<f32>(0.0);
    var sum1 = vec4<f32>(0.0);
    var comp1 = vec4<f32>(0.0);
    let lane = vec4<u32>(0u, 1u, 2u, 3u);
    for (var g = lid; g * 4u < params.rows; g = g + 64u) {
        let r = g * 4u;
        let row = params.m_row0 + r;
        let rv = res[(params.r_row0 + r) / 4u];
        let inside = (vec4<u32>(r) + lane) < vec4<u32>(params.rows);
        let sh = vec4<u32>(row % 32u) + lane;
        let on0 = inside & (((vec4<u32>(bits[k0 + row / 32u]) >> sh) & vec4<u32>(1u)) == vec4<u32>(1u));
        let term0 = xat4((col0 + r) / 4u) * rv - comp0;
        let t0 = sum0 + term0;
        comp0 = select(comp0, (t0 - sum0) - term0, on0);
        sum0 = select(sum0, t0, on0);
        let on1 = inside & (((vec4<u32>(bits[k1 + row / 32u]) >> sh) & vec4<u32>(1u)) == vec4<u32>(1u));
        let term1 = xat4((col1 + r) / 4u) * rv - comp1;
        let t1 = sum1 + term1;
        comp1 = select(comp1, (t1 - sum1) - term1, on1);
        sum1 = select(sum1, t1, on1);
    }
    let mine = vec2<f32>(((sum0.x + sum0.y) + sum0.z) + sum0.w, ((sum1.x + sum1.y) + sum1.z) + sum1.w);
    let sums = workgroup_sum(lid, mine);
    if (lid == 0u) {
        var total = sums.x;
        if (params.accumulate == 1u) {
            total = out[p0] + total;
        }
        out[p0] = total;
        if (two) {
            var total1 = sums.y;
            if (params.accumulate == 1u) {
                total1 = out[p0 + 1u] + total1;
            }
            out[p0 + 1u] = total1;
        }
    }
}

// The sum of `v` over the workgroup's 64 invocations, by a fixed tree (the CPU twin's order); every
// invocation gets it. `--gpu-subgroups` swaps this function for subgroup sums (see
// `gpu::shaders::subgroup_source`).
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
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
