// relu_mask: activation bits of a tile of neurons over a block of rows.
//
//   bits[jj * out_stride + out_word0 + w] bit b  =  1{ Σ_i X[32w + b, i] · h_jj[i] > 0 }
//   (strict >; rows counted from the block's first row, which is a multiple of 32)
//
// The sum runs over i in increasing order with fma from 0, exactly as the CPU twin
// `cpu::relu_mask::twin`; so both entries give the twin's bits.
//
//   entry `main`: dense generators h_jj[i] = h[jj * d + i] (the random generators of a step), as a
//   GEMM: a 16 × 16 workgroup owns 64 rows × 64 neurons, each invocation 4 rows × 4 neurons
//   (strided by 16); the inner dimension is staged 16 coordinates at a time in workgroup memory,
//   X with neighbouring invocations loading neighbouring rows (coalesced), H neighbouring
//   coordinates. Coordinates past d are staged as zeros: fma(0, 0, z) leaves z unchanged.
//   entry `rows`: dense generators for a small d or few neurons (where a 64 × 64 tile would be
//   mostly padding): one invocation per row (neighbouring rows: neighbouring addresses of X) and
//   four neurons, 64 rows × 4 neurons per workgroup.
//   entry `sparse`: generators that are a network's own sparse weights (h = w), one run of
//   nonzeros per neuron, h_jj = Σ_{p ∈ [start[run0 + jj], start[run0 + jj + 1])} vals[p] e_{cols[p]}
//   with cols increasing: O(rows · nnz) instead of O(rows · d · tile). Skipping the zero
//   coordinates leaves the sum's bits as the dense one's (fma(x, 0, z) = z).
// Bindings:
//   0 uniform  Params  rows (rows in the block), d, tile (neurons), words (= ceil(rows / 32)),
//                      x_stride (floats between columns of X), x_row0 (first row of the block in X),
//                      out_stride (words per neuron in `bits`), out_word0 (the block's first word),
//                      run0 (sparse: the tile's first run)
//   1 storage  x       X column-major: X[r, i] = x[i * x_stride + x_row0 + r] (f32, or f16 with `--gpu-f16`)
//   2 storage  h       main: dense generator tile, h[jj * d + i]
//   3 storage  bits    output words
//   4 storage  start   sparse: run offsets into cols / vals
//   5 storage  cols    sparse: coordinate of each nonzero
//   6 storage  vals    sparse: its value
// Dispatch: main (ceil(rows / 64), ceil(tile / 64), 1); rows (ceil(rows / 64), ceil(tile / 4), 1);
// sparse (ceil(rows / 64), ceil(tile / 16), 1); lanes (min(words, 65535), ceil(tile / 64),
// ceil(words / 65535)); sparse_lanes (ceil(words / 64), tile, 1).

struct Params {
    rows: u32,
    d: u32,
    tile: u32,
    words: u32,
    x_stride: u32,
    x_row0: u32,
    out_stride: u32,
    out_word0: u32,
    run0: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
// Every read of X goes through `xat` (one value) or `xat4` (four rows of a column, at a vec4
// index; the column stride and the block's first row are multiples of 4): the f16-storage
// variant of the pipeline swaps these lines (see `gpu::shaders::x_f16_source`).
fn xat(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }
fn xat4(i: u32) -> vec4<f32> { return x[i]; }
@group(0) @binding(2) var<storage, read> h: array<f32>;
@group(0) @binding(3) var<storage, read_write> bits: array<u32>;
@group(0) @binding(4) var<storage, read> start: array<u32>;
@group(0) @binding(5) var<storage, read> cols: array<u32>;
@group(0) @binding(6) var<storage, read> vals: array<f32>;

var<workgroup> xs: array<array<f32, 65>, 16>;
var<workgroup> hs: array<array<f32, 65>, 16>;
var<workgroup> words: array<atomic<u32>, 128>;

// Every entry gathers a workgroup's bits in `words`, two words (64 rows) per neuron, neuron q's
// at 2q and 2q + 1. Invocation `lane` clears word `lane` when lane < count.
fn clear_words(lane: u32, count: u32) {
    if (lane < count) {
        atomicStore(&words[lane], 0u);
    }
}

// Invocation `lane` < count writes word `lane` (neuron j0 + lane / 2, the workgroup's word
// lane % 2 of row block `wgx`) when it lies inside the block and the tile.
fn store_words(lane: u32, count: u32, wgx: u32, j0: u32) {
    if (lane < count) {
        let q = lane / 2u;
        let w = wgx * 2u + lane % 2u;
        if (w < params.words && j0 + q < params.tile) {
            bits[(j0 + q) * params.out_stride + params.out_word0 + w] = atomicLoad(&words[lane]);
        }
    }
}

// Bit q of the result: whether row q of the 16 in z0..z3 (four rows each) is positive.
fn positive16(z0: vec4<f32>, z1: vec4<f32>, z2: vec4<f32>, z3: vec4<f32>) -> u32 {
    let zero = vec4<u32>(0u);
    let one = vec4<u32>(1u, 2u, 4u, 8u);
    let b = select(zero, one, z0 > vec4<f32>(0.0))
        | select(zero, one << vec4<u32>(4u), z1 > vec4<f32>(0.0))
        | select(zero, one << vec4<u32>(8u), z2 > vec4<f32>(0.0))
        | select(zero, one << vec4<u32>(12u), z3 > vec4<f32>(0.0));
    return b.x | b.y | b.z | b.w;
}

// Entry `lanes`, for CPU adapters (Lavapipe), which run a workgroup's invocations as SIMD lanes and
// pay for every barrier and every per-lane load: no workgroup memory, no barrier. Invocation jj
// is one neuron; a workgroup (w, neurons 64y..) forms mask word w (32 rows) of 64 neurons, 16 rows
// at a time held in registers: per coordinate, one load of h_jj[i] per lane and four vec4 loads
// of X (sixteen rows) at the same address in every lane (a short last word: one value at a time).
// Grid x and z together count the words (w = z * 65535 + x).
@compute @workgroup_size(64)
fn lanes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let jj = wg.y * 64u + lid;
    let w = wg.z * 65535u + wg.x;
    if (jj >= params.tile || w >= params.words) {
        return;
    }
    let r0 = w * 32u;
    let nr = min(32u, params.rows - r0);
    let hj = jj * params.d;
    var word = 0u;
    for (var half = 0u; half * 16u < nr; half = half + 1u) {
        let rh = params.x_row0 + r0 + half * 16u;
        let nh = min(16u, nr - half * 16u);
        if (nh == 16u) {
            // Four vec4 loads of X per coordinate (rh is a multiple of 4: see `xat4`).
            var z0 = vec4<f32>(0.0);
            var z1 = vec4<f32>(0.0);
            var z2 = vec4<f32>(0.0);
            var z3 = vec4<f32>(0.0);
            for (var i = 0u; i < params.d; i = i + 1u) {
                let hv = vec4<f32>(h[hj + i]);
                let base = (i * params.x_stride + rh) / 4u;
                z0 = fma(xat4(base), hv, z0);
                z1 = fma(xat4(base + 1u), hv, z1);
                z2 = fma(xat4(base + 2u), hv, z2);
                z3 = fma(xat4(base + 3u), hv, z3);
            }
            word = word | (positive16(z0, z1, z2, z3) << (half * 16u));
        } else {
            var z: array<f32, 16>;
            for (var q = 0u; q < 16u; q = q + 1u) {
                z[q] = 0.0;
            }
            for (var i = 0u; i < params.d; i = i + 1u) {
                let hv = h[hj + i];
                let base = i * params.x_stride + rh;
                for (var q = 0u; q < nh; q = q + 1u) {
                    z[q] = fma(xat(base + q), hv, z[q]);
                }
            }
            for (var q = 0u; q < nh; q = q + 1u) {
                if (z[q] > 0.0) {
                    word = word | (1u << (half * 16u + q));
                }
            }
        }
    }
    bits[jj * params.out_stride + params.out_word0 + w] = word;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r0 = wg.x * 64u;
    let j0 = wg.y * 64u;
    let flat = lid.y * 16u + lid.x;
    clear_words(flat, 128u);
    workgroupBarrier();
    var acc: array<array<f32, 4>, 4>;
    for (var a = 0u; a < 4u; a = a + 1u) {
        for (var b = 0u; b < 4u; b = b + 1u) {
            acc[a][b] = 0.0;
        }
    }
    for (var i0 = 0u; i0 < params.d; i0 = i0 + 16u) {
        for (var q = 0u; q < 4u; q = q + 1u) {
            let e = q * 256u + flat;
            // X: 64 rows × 16 coordinates, neighbouring invocations on neighbouring rows.
            let row = e % 64u;
            let xi = e / 64u;
            var xv = 0.0;
            if (r0 + row < params.rows && i0 + xi < params.d) {
                xv = xat((i0 + xi) * params.x_stride + params.x_row0 + r0 + row);
            }
            xs[xi][row] = xv;
            // H: 16 coordinates × 64 neurons, neighbouring invocations on neighbouring coordinates.
            let hi = e % 16u;
            let jj = e / 16u;
            var hv = 0.0;
            if (j0 + jj < params.tile && i0 + hi < params.d) {
                hv = h[(j0 + jj) * params.d + i0 + hi];
            }
            hs[hi][jj] = hv;
        }
        workgroupBarrier();
        for (var k = 0u; k < 16u; k = k + 1u) {
            var xa: array<f32, 4>;
            var hb: array<f32, 4>;
            for (var a = 0u; a < 4u; a = a + 1u) {
                xa[a] = xs[k][lid.x + 16u * a];
                hb[a] = hs[k][lid.y + 16u * a];
            }
            for (var a = 0u; a < 4u; a = a + 1u) {
                for (var b = 0u; b < 4u; b = b + 1u) {
                    acc[a][b] = fma(xa[a], hb[b], acc[a][b]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var a = 0u; a < 4u; a = a + 1u) {
        let row = lid.x + 16u * a;
        for (var b = 0u; b < 4u; b = b + 1u) {
            if (acc[a][b] > 0.0 && r0 + row < params.rows) {
                atomicOr(&words[(lid.y + 16u * b) * 2u + row / 32u], 1u << (row % 32u));
            }
        }
    }
    workgroupBarrier();
    store_words(flat, 128u, wg.x, j0);
}

@compute @workgroup_size(64)
fn rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j0 = wg.y * 4u;
    let r = wg.x * 64u + lid;
    clear_words(lid, 8u);
    workgroupBarrier();
    if (r < params.rows) {
        var z = vec4<f32>(0.0);
        // Neurons past the tile read neuron j0's generator and are never written.
        var hrow = vec4<u32>(j0, j0, j0, j0);
        for (var q = 0u; q < 4u; q = q + 1u) {
            if (j0 + q < params.tile) {
                hrow[q] = j0 + q;
            }
        }
        for (var i = 0u; i < params.d; i = i + 1u) {
            let xv = xat(i * params.x_stride + params.x_row0 + r);
            let hv = vec4<f32>(
                h[hrow.x * params.d + i],
                h[hrow.y * params.d + i],
                h[hrow.z * params.d + i],
                h[hrow.w * params.d + i],
            );
            z = fma(vec4<f32>(xv), hv, z);
        }
        for (var q = 0u; q < 4u; q = q + 1u) {
            if (z[q] > 0.0) {
                atomicOr(&words[q * 2u + lid / 32u], 1u << (lid % 32u));
            }
        }
    }
    workgroupBarrier();
    store_words(lid, 8u, wg.x, j0);
}

// One invocation per row (neighbouring rows: neighbouring addresses of X) and 16 neurons.
@compute @workgroup_size(64)
fn sparse(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j0 = wg.y * 16u;
    let r = wg.x * 64u + lid;
    clear_words(lid, 32u);
    workgroupBarrier();
    if (r < params.rows) {
        for (var q = 0u; q < 16u; q = q + 1u) {
            let jj = j0 + q;
            if (jj >= params.tile) {
                break;
            }
            var z = 0.0;
            let end = start[params.run0 + jj + 1u];
            for (var p = start[params.run0 + jj]; p < end; p = p + 1u) {
                z = fma(xat(cols[p] * params.x_stride + params.x_row0 + r), vals[p], z);
            }
            if (z > 0.0) {
                atomicOr(&words[q * 2u + lid / 32u], 1u << (lid % 32u));
            }
        }
    }
    workgroupBarrier();
    store_words(lid, 32u, wg.x, j0);
}

// Entry `sparse_lanes`, for CPU adapters: the sparse generators' bits without workgroup memory or
// atomics. Invocation w is one mask word (32 rows) of neuron jj = wg.y, 16 rows at a time: per
// nonzero of the neuron's run (read at the same address in every lane), four vec4 loads of X.
// The rows' sums are those of `sparse` (fma in run order from 0); bits past the block are 0.
@compute @workgroup_size(64)
fn sparse_lanes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let w = wg.x * 64u + lid;
    let jj = wg.y;
    if (w >= params.words || jj >= params.tile) {
        return;
    }
    let r0 = w * 32u;
    let nr = min(32u, params.rows - r0);
    let a = start[params.run0 + jj];
    let b = start[params.run0 + jj + 1u];
    var word = 0u;
    for (var half = 0u; half * 16u < nr; half = half + 1u) {
        let rh = params.x_row0 + r0 + half * 16u;
        var z0 = vec4<f32>(0.0);
        var z1 = vec4<f32>(0.0);
        var z2 = vec4<f32>(0.0);
        var z3 = vec4<f32>(0.0);
        for (var p = a; p < b; p = p + 1u) {
            let v = vec4<f32>(vals[p]);
            let base = (cols[p] * params.x_stride + rh) / 4u;
            z0 = fma(xat4(base), v, z0);
            z1 = fma(xat4(base + 1u), v, z1);
            z2 = fma(xat4(base + 2u), v, z2);
            z3 = fma(xat4(base + 3u), v, z3);
        }
        word = word | (positive16(z0, z1, z2, z3) << (half * 16u));
    }
    if (nr < 32u) {
        word = word & ((1u << nr) - 1u);
    }
    bits[jj * params.out_stride + params.out_word0 + w] = word;
}
