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
//   1 storage  x          X column-major: X[r, i] = x[i * x_stride + x_row0 + r] (f32, or f16 with `--gpu-f16`)
//   2 storage  cols       column i of each support entry
//   3 storage  run_start  runs + 1 offsets into cols / z
//   4 storage  z          support values
//   5 storage  bits       bits[k * words + row / 32]
//   6 storage  out        output
//   7 storage  y          targets (read when sub_y = 1)
// Dispatch: main (ceil(rows / 256), 1, 1), four consecutive rows per invocation; lanes
// (min(g, 65535), ceil(g / 65535), 1) for g = ceil(rows / 128).

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
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
// Every read of X goes through `xat` (one value) or `xat4` (four rows of a column, at a vec4
// index; the column stride and the block's first row are multiples of 4): the f16-storage
// variant of the pipeline swaps these lines (see `gpu::shaders::x_f16_source`).
fn xat(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }
fn xat4(i: u32) -> vec4<f32> { return x[i]; }
@group(0) @binding(2) var<storage, read> cols: array<u32>;
@group(0) @binding(3) var<storage, read> run_start: array<u32>;
@group(0) @binding(4) var<storage, read> z: array<f32>;
@group(0) @binding(5) var<storage, read> bits: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read> y: array<f32>;

// Each invocation takes four consecutive rows (a workgroup covers 256 rows): one vec4 load of X
// per support entry serves the four (the column stride and the block's first row are multiples
// of 4, rows past the block are padding and are not written), the four rows share one mask word
// (m_row0 is a multiple of 32), and the run's offsets, columns and values are read once for them.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r0 = (wg.x * 64u + lid) * 4u;
    if (r0 >= params.rows) {
        return;
    }
    let row = params.m_row0 + r0;
    let sh = vec4<u32>(0u, 1u, 2u, 3u) + vec4<u32>(row % 32u);
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < params.runs; k = k + 1u) {
        let word = bits[k * params.words + row / 32u];
        let on = ((vec4<u32>(word) >> sh) & vec4<u32>(1u)) == vec4<u32>(1u);
        if (!any(on)) {
            continue;
        }
        var s = vec4<f32>(0.0);
        for (var p = run_start[k]; p < run_start[k + 1u]; p = p + 1u) {
            let base = (cols[p] * params.x_stride + params.x_row0 + r0) / 4u;
            s = fma(vec4<f32>(z[p]), xat4(base), s);
        }
        acc = acc + select(vec4<f32>(0.0), s, on);
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        let r = r0 + j;
        if (r < params.rows) {
            var yv = 0.0;
            if (params.sub_y == 1u) {
                yv = y[params.out_row0 + r];
            }
            out[params.out_row0 + r] = acc[j] - yv;
        }
    }
}

// Entry `lanes`, for CPU adapters: a workgroup of 8 invocations covers 128 rows, four mask words;
// invocation l takes rows 4l .. 4l + 3 of each word (one vec4 load of X per word and support
// entry), so each run's words are read at addresses that are the same in every lane, once for
// 128 rows. The same sums as `main`.
@compute @workgroup_size(8)
fn lanes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let wq = wg.y * 65535u + wg.x;
    let r0 = wq * 128u;
    if (r0 >= params.rows) {
        return;
    }
    let ra = r0 + lid * 4u;
    let wi = (params.m_row0 + r0) / 32u;
    let nw = min(4u, (params.rows - r0 + 31u) / 32u);
    let sh = vec4<u32>(0u, 1u, 2u, 3u) + vec4<u32>(lid * 4u);
    var acc: array<vec4<f32>, 4>;
    for (var q = 0u; q < 4u; q = q + 1u) {
        acc[q] = vec4<f32>(0.0);
    }
    for (var k = 0u; k < params.runs; k = k + 1u) {
        var wv = vec4<u32>(0u);
        for (var q = 0u; q < nw; q = q + 1u) {
            wv[q] = bits[k * params.words + wi + q];
        }
        if (all(wv == vec4<u32>(0u))) {
            continue;
        }
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        var s2 = vec4<f32>(0.0);
        var s3 = vec4<f32>(0.0);
        for (var p = run_start[k]; p < run_start[k + 1u]; p = p + 1u) {
            let zp = vec4<f32>(z[p]);
            let base = (cols[p] * params.x_stride + params.x_row0 + ra) / 4u;
            s0 = fma(zp, xat4(base), s0);
            s1 = fma(zp, xat4(base + 8u), s1);
            s2 = fma(zp, xat4(base + 16u), s2);
            s3 = fma(zp, xat4(base + 24u), s3);
        }
        let one = vec4<u32>(1u);
        acc[0] = acc[0] + select(vec4<f32>(0.0), s0, ((vec4<u32>(wv.x) >> sh) & one) == one);
        acc[1] = acc[1] + select(vec4<f32>(0.0), s1, ((vec4<u32>(wv.y) >> sh) & one) == one);
        acc[2] = acc[2] + select(vec4<f32>(0.0), s2, ((vec4<u32>(wv.z) >> sh) & one) == one);
        acc[3] = acc[3] + select(vec4<f32>(0.0), s3, ((vec4<u32>(wv.w) >> sh) & one) == one);
    }
    for (var q = 0u; q < 4u; q = q + 1u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            let r = ra + 32u * q + j;
            if (r < params.rows) {
                var yv = 0.0;
                if (params.sub_y == 1u) {
                    yv = y[params.out_row0 + r];
                }
                out[params.out_row0 + r] = acc[q][j] - yv;
            }
        }
    }
}
