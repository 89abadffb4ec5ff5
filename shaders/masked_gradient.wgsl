// masked_gradient: the gradient of a tile of neurons over a block of rows, split over the rows
// (split-K) so a dispatch fills a large GPU, then reduced pairwise and fused with the candidate step.
//
//   entry `main`, workgroup (x, y, z) = (coordinates i0.., neurons j0.., split k):
//   part[(k * tile + jj) * d + i] = Σ_r X[r, i] · bit(jj, r) · res[r]
//       over the split's rows r ∈ [k·split_rows, min((k+1)·split_rows, rows)), in order, with fma;
//   or, with res_stride > 0 (a residual per neuron, already masked: the vector model's chain rule),
//       Σ_r X[r, i] · res[jj * res_stride + r]
//
//   entry `reduce`, one invocation per output o = jj * d + i: the splits' partial sums added
//   pairwise (while c > 1: h = ⌈c/2⌉; part_k += part_{k+h} for k < c − h; c = h), then
//   g[o] = (accumulate ? g[o] : 0) + part_0
//   and when finish = 1:  g[o] = xtile[o] − mu · g[o]
//   (mu = params.mu, or the step size in the device state, state[0], when mu_from_state = 1)
//
//   entry `scatter`: the dense weights of a tile of live neurons from the sparse iterate:
//   xout[(pos[p] − pos0) * d + idx[p] % d] = val[p] for every entry p (p < nnz) whose neuron's
//   live position pos[p] is in [pos0, pos0 + tile); the rest of the tile was cleared before.
//
// `main` is tiled in workgroup memory and registers: a 16 × 16 workgroup owns 64 coordinates × 128
// neurons of one split, each invocation a 4 × 8 block of them strided by 16 (so neighbouring
// invocations read neighbouring words of workgroup memory; 12 loads of workgroup memory serve 32
// FMAs); rows are walked 16 at a time, staging X[rows, coords] as one vec4 of four rows per
// invocation and the masked residual P[rows, neurons] as eight rows of one neuron (one mask word
// read), coalesced (X and res are row-contiguous), into rows of 65 and 129 floats (the pad keeps
// the column-wise stores off a single bank). The CPU twin `cpu::masked_gradient::twin`
// follows the same order: serial within a split, pairwise across splits (so the f32 error grows
// with split_rows + log₂ splits, not with n).
// Bindings:
//   0 uniform  Params   rows, d, tile, words (mask words per neuron), x_stride, x_row0, r_row0,
//                       accumulate (0/1), finish (0/1), mu, res_stride, mu_from_state,
//                       bits0 (first mask word), split_rows, splits;
//                       scatter: nnz (as rows), d, tile, pos0 (as words)
//   1 storage  x        X column-major: X[r, i] = x[i * x_stride + x_row0 + r] (f32, or f16 with `--gpu-f16`)
//   2 storage  res      residual, res[r_row0 + r] (or res[jj * res_stride + r_row0 + r])
//   3 storage  bits     masks, bits[bits0 + jj * words + r / 32]
//   4 storage  xtile    current weights of the tile, dense, xtile[jj * d + i]
//   5 storage  g        output, g[jj * d + i]
//   6 storage  state    the device state of the solver's phases (read: state[0] = mu)
//   7 storage  idx      scatter: indices of the sparse iterate
//   8 storage  val      scatter: its values
//   9 storage  pos      scatter: the live position of each entry's neuron
//  10 storage  xout     scatter: the dense tile written
//  11 storage  part     the splits' partial sums, splits × tile × d
// Dispatch: main (ceil(d / 64), ceil(tile / 64), splits); lanes (ceil(d / 64), ceil(tile / 16), splits); reduce and scatter over W elements
// (W = tile · d, resp. nnz) as (min(G, 65535), ceil(G / 65535), 1), G = ceil(W / 64).

struct Params {
    rows: u32,
    d: u32,
    tile: u32,
    words: u32,
    x_stride: u32,
    x_row0: u32,
    r_row0: u32,
    accumulate: u32,
    finish: u32,
    mu: f32,
    res_stride: u32,
    mu_from_state: u32,
    bits0: u32,
    split_rows: u32,
    splits: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
// Every read of X goes through `xat` (one value) or `xat4` (four rows of a column, at a vec4
// index; the column stride and the block's first row are multiples of 4): the f16-storage
// variant of the pipeline swaps these lines (see `gpu::shaders::x_f16_source`).
fn xat(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }
fn xat4(i: u32) -> vec4<f32> { return x[i]; }
@group(0) @binding(2) var<storage, read> res: array<f32>;
@group(0) @binding(3) var<storage, read> bits: array<u32>;
@group(0) @binding(4) var<storage, read> xtile: array<f32>;
@group(0) @binding(5) var<storage, read_write> g: array<f32>;
@group(0) @binding(6) var<storage, read> state: array<f32>;
@group(0) @binding(7) var<storage, read> idx: array<u32>;
@group(0) @binding(8) var<storage, read> val: array<f32>;
@group(0) @binding(9) var<storage, read> pos: array<u32>;
@group(0) @binding(10) var<storage, read_write> xout: array<f32>;
@group(0) @binding(11) var<storage, read_write> part: array<f32>;

var<workgroup> xs: array<array<f32, 65>, 16>;
var<workgroup> ps: array<array<f32, 129>, 16>;

// Rows r0..end of X's column xc, one at a time, into the sums `acc` of the tile's neurons j0..
// (the rows a vec4 load does not cover, and every row under a per-neuron residual): the first nj
// neurons with their own residual (res_stride > 0), else all 16 with the shared residual under the
// bits of `word` (the rows' mask words). Shared by `lanes` and `lanes_sg`.
fn rows_one_at_a_time(
    acc: ptr<function, array<f32, 16>>,
    word: array<u32, 16>,
    xc: u32,
    j0: u32,
    nj: u32,
    r0: u32,
    end: u32,
) {
    for (var r = r0; r < end; r = r + 1u) {
        let xv = xat(xc + r);
        if (params.res_stride > 0u) {
            for (var b = 0u; b < nj; b = b + 1u) {
                (*acc)[b] = fma(xv, res[(j0 + b) * params.res_stride + params.r_row0 + r], (*acc)[b]);
            }
        } else {
            let rv = res[params.r_row0 + r];
            let sh = r % 32u;
            for (var b = 0u; b < 16u; b = b + 1u) {
                (*acc)[b] = fma(xv, select(0.0, rv, ((word[b] >> sh) & 1u) == 1u), (*acc)[b]);
            }
        }
    }
}

// Entry `lanes`, for CPU adapters (Lavapipe): the very sums of `main`, without workgroup memory or
// barriers (a CPU driver runs a workgroup's invocations as SIMD lanes and switches between them at
// every barrier). Workgroup (x, y, z) = (coordinates 64x.., neurons 16y.., split z); invocation
// i is one coordinate and sums it for 16 neurons over the split's rows in order with fma: one vec4
// load of X serves four rows of sixteen sums (one value per row for a per-neuron residual), and
// each neuron's mask word is read once per 32 rows.
@compute @workgroup_size(64)
fn lanes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = wg.x * 64u + lid;
    let j0 = wg.y * 16u;
    if (i >= params.d || j0 >= params.tile) {
        return;
    }
    let ra = wg.z * params.split_rows;
    let rb = min(ra + params.split_rows, params.rows);
    let nj = min(16u, params.tile - j0);
    // Zero, as every WGSL variable starts.
    var acc: array<f32, 16>;
    var word: array<u32, 16>;
    let xc = i * params.x_stride + params.x_row0;
    var r = ra;
    while (r < rb) {
        let end = min(rb, (r / 32u + 1u) * 32u);
        if (params.res_stride == 0u) {
            for (var b = 0u; b < nj; b = b + 1u) {
                word[b] = bits[params.bits0 + (j0 + b) * params.words + r / 32u];
            }
        }
        if (params.res_stride == 0u) {
            // Four rows per vec4 load of X: r starts at a multiple of 32 (splits and mask words
            // are), and xc is a multiple of 4 (see `xat4`). The rows are summed in order.
            for (; r + 4u <= end; r = r + 4u) {
                let xv = xat4((xc + r) / 4u);
                let sh = r % 32u;
                for (var q = 0u; q < 4u; q = q + 1u) {
                    let rv = res[params.r_row0 + r + q];
                    for (var b = 0u; b < 16u; b = b + 1u) {
                        let on = ((word[b] >> (sh + q)) & 1u) == 1u;
                        acc[b] = fma(xv[q], select(0.0, rv, on), acc[b]);
                    }
                }
            }
        }
        rows_one_at_a_time(&acc, word, xc, j0, nj, r, end);
        r = end;
    }
    for (var b = 0u; b < nj; b = b + 1u) {
        part[(wg.z * params.tile + j0 + b) * params.d + i] = acc[b];
    }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i0 = wg.x * 64u;
    let j0 = wg.y * 128u;
    let ra = wg.z * params.split_rows;
    let rb = min(ra + params.split_rows, params.rows);
    let flat = lid.y * 16u + lid.x;
    // Zero, as every WGSL variable starts.
    var acc: array<array<f32, 8>, 4>;
    // What this invocation stages: X's column i0 + flat / 4, rows 4 (flat % 4).. (one vec4), and
    // the masked residual of neuron j0 + flat / 2, rows 8 (flat % 2)...
    let xcol = flat / 4u;
    let xrow = 4u * (flat % 4u);
    let pj = flat / 2u;
    let prow = 8u * (flat % 2u);
    let xin = i0 + xcol < params.d;
    let pin = j0 + pj < params.tile;
    for (var r0 = ra; r0 < rb; r0 = r0 + 16u) {
        // X: 16 rows × 64 coordinates, a vec4 of four rows per invocation (r0 and X's column
        // stride are multiples of 4: see `xat4`); four neighbouring invocations read one column's
        // 16 rows, 64 contiguous bytes. Rows past the split's end and coordinates past d are 0.
        var xv = vec4<f32>(0.0);
        if (xin && r0 + xrow < rb) {
            xv = xat4(((i0 + xcol) * params.x_stride + params.x_row0 + r0 + xrow) / 4u);
        }
        for (var q = 0u; q < 4u; q = q + 1u) {
            var v = xv[q];
            if (r0 + xrow + q >= rb) {
                v = 0.0;
            }
            xs[xrow + q][xcol] = v;
        }
        // P: 16 rows × 128 neurons, eight rows of one neuron per invocation (16 rows lie in one
        // mask word: r0 − ra is a multiple of 16 and ra of 32).
        var word = 0u;
        if (pin && params.res_stride == 0u) {
            word = bits[params.bits0 + (j0 + pj) * params.words + r0 / 32u];
        }
        for (var q = 0u; q < 8u; q = q + 1u) {
            let r = r0 + prow + q;
            var pv = 0.0;
            if (pin && r < rb) {
                if (params.res_stride > 0u) {
                    pv = res[(j0 + pj) * params.res_stride + params.r_row0 + r];
                } else if (((word >> (r % 32u)) & 1u) == 1u) {
                    pv = res[params.r_row0 + r];
                }
            }
            ps[prow + q][pj] = pv;
        }
        workgroupBarrier();
        // Rows past the split's end were staged as zeros: fma(0, 0, acc) leaves acc unchanged.
        for (var k = 0u; k < 16u; k = k + 1u) {
            var xa: array<f32, 4>;
            var pb: array<f32, 8>;
            for (var a = 0u; a < 4u; a = a + 1u) {
                xa[a] = xs[k][lid.x + 16u * a];
            }
            for (var b = 0u; b < 8u; b = b + 1u) {
                pb[b] = ps[k][lid.y + 16u * b];
            }
            for (var a = 0u; a < 4u; a = a + 1u) {
                for (var b = 0u; b < 8u; b = b + 1u) {
                    acc[a][b] = fma(xa[a], pb[b], acc[a][b]);
                }
            }
        }
        workgroupBarrier();
    }
    let base = wg.z * params.tile;
    for (var a = 0u; a < 4u; a = a + 1u) {
        for (var b = 0u; b < 8u; b = b + 1u) {
            let i = i0 + lid.x + 16u * a;
            let jj = j0 + lid.y + 16u * b;
            if (i < params.d && jj < params.tile) {
                part[(base + jj) * params.d + i] = acc[a][b];
            }
        }
    }
}

@compute @workgroup_size(64)
fn reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let o = (wg.y * 65535u + wg.x) * 64u + lid;
    let len = params.tile * params.d;
    if (o >= len) {
        return;
    }
    var c = params.splits;
    while (c > 1u) {
        let h = (c + 1u) / 2u;
        for (var k = 0u; k + h < c; k = k + 1u) {
            part[k * len + o] = part[k * len + o] + part[(k + h) * len + o];
        }
        c = h;
    }
    var total = part[o];
    if (params.accumulate == 1u) {
        total = g[o] + total;
    }
    if (params.finish == 1u) {
        var mu = params.mu;
        if (params.mu_from_state == 1u) {
            mu = state[0];
        }
        total = xtile[o] - mu * total;
    }
    g[o] = total;
}

@compute @workgroup_size(64)
fn scatter(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let p = (wg.y * 65535u + wg.x) * 64u + lid;
    if (p >= params.rows) {
        return;
    }
    let slot = pos[p];
    if (slot >= params.words && slot - params.words < params.tile) {
        xout[(slot - params.words) * params.d + idx[p] % params.d] = val[p];
    }
}
