// masked_gradient: the gradient of a tile of neurons over a block of rows, fused with the
// candidate step.
//
//   acc[jj, i] = Σ_r X[r, i] · bit(jj, r) · res[r]            (r over the block's rows)
//   or, with res_stride > 0 (a residual per neuron, already masked: the vector model's chain rule),
//   acc[jj, i] = Σ_r X[r, i] · res[jj * res_stride + r]
//   g[jj * d + i] = (accumulate ? g[jj * d + i] : 0) + acc[jj, i]
//   and when finish = 1:  g[jj * d + i] = xtile[jj * d + i] − mu · g[jj * d + i]
//   (mu = params.mu, or the step size in the device state, state[0], when mu_from_state = 1)
//
//   entry `scatter`: the dense weights of a tile of live neurons from the sparse iterate:
//   xout[(pos[p] − pos0) * d + idx[p] % d] = val[p] for every entry p (p < nnz) whose neuron's
//   live position pos[p] is in [pos0, pos0 + tile); the rest of the tile was cleared before.
//
// Tiled in workgroup memory and registers: a 16 × 16 workgroup owns 64 coordinates × 64 neurons,
// each invocation a 4 × 4 block of them; rows are walked 16 at a time, staging X[rows, coords]
// and the masked residual P[rows, neurons] (4 FMAs per staged value instead of 1). Every output
// still sums its rows in order with fma, as the CPU twin.
// Bindings:
//   0 uniform  Params   rows, d, tile, words (per neuron, this block), x_stride, x_row0, r_row0,
//                       accumulate (0/1), finish (0/1), mu, res_stride, mu_from_state;
//                       scatter: nnz (as rows), d, tile, pos0 (as words)
//   1 storage  x        X column-major: X[r, i] = x[i * x_stride + x_row0 + r]
//   2 storage  res      residual, res[r_row0 + r] (or res[jj * res_stride + r_row0 + r])
//   3 storage  bits     masks of this block, bits[jj * words + r / 32]
//   4 storage  xtile    current weights of the tile, dense, xtile[jj * d + i]
//   5 storage  g        output, g[jj * d + i]
//   6 storage  state    the device state of the solver's phases (read: state[0] = mu)
//   7 storage  idx      scatter: indices of the sparse iterate
//   8 storage  val      scatter: its values
//   9 storage  pos      scatter: the live position of each entry's neuron
//  10 storage  xout     scatter: the dense tile written
// Dispatch: main (ceil(d / 64), ceil(tile / 64), 1); scatter (min(W, 65535), ceil(W / 65535), 1),
// W = ceil(nnz / 64).

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
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> res: array<f32>;
@group(0) @binding(3) var<storage, read> bits: array<u32>;
@group(0) @binding(4) var<storage, read> xtile: array<f32>;
@group(0) @binding(5) var<storage, read_write> g: array<f32>;
@group(0) @binding(6) var<storage, read> state: array<f32>;
@group(0) @binding(7) var<storage, read> idx: array<u32>;
@group(0) @binding(8) var<storage, read> val: array<f32>;
@group(0) @binding(9) var<storage, read> pos: array<u32>;
@group(0) @binding(10) var<storage, read_write> xout: array<f32>;

var<workgroup> xs: array<array<f32, 64>, 16>;
var<workgroup> ps: array<array<f32, 64>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i0 = wg.x * 64u;
    let j0 = wg.y * 64u;
    let flat = lid.y * 16u + lid.x;
    var acc: array<array<f32, 4>, 4>;
    for (var a = 0u; a < 4u; a = a + 1u) {
        for (var b = 0u; b < 4u; b = b + 1u) {
            acc[a][b] = 0.0;
        }
    }
    for (var r0 = 0u; r0 < params.rows; r0 = r0 + 16u) {
        // 256 invocations stage 16 rows × 64 columns of each operand, 4 values each.
        for (var q = 0u; q < 4u; q = q + 1u) {
            let e = q * 256u + flat;
            let row = e / 64u;
            let col = e % 64u;
            let r = r0 + row;
            var xv = 0.0;
            if (r < params.rows && i0 + col < params.d) {
                xv = x[(i0 + col) * params.x_stride + params.x_row0 + r];
            }
            xs[row][col] = xv;
            var pv = 0.0;
            let jj = j0 + col;
            if (r < params.rows && jj < params.tile) {
                if (params.res_stride > 0u) {
                    pv = res[jj * params.res_stride + params.r_row0 + r];
                } else {
                    let word = bits[jj * params.words + r / 32u];
                    if (((word >> (r % 32u)) & 1u) == 1u) {
                        pv = res[params.r_row0 + r];
                    }
                }
            }
            ps[row][col] = pv;
        }
        workgroupBarrier();
        for (var k = 0u; k < 16u; k = k + 1u) {
            var xa: array<f32, 4>;
            var pb: array<f32, 4>;
            for (var a = 0u; a < 4u; a = a + 1u) {
                xa[a] = xs[k][lid.x * 4u + a];
                pb[a] = ps[k][lid.y * 4u + a];
            }
            for (var a = 0u; a < 4u; a = a + 1u) {
                for (var b = 0u; b < 4u; b = b + 1u) {
                    acc[a][b] = fma(xa[a], pb[b], acc[a][b]);
                }
            }
        }
        workgroupBarrier();
    }
    var mu = params.mu;
    if (params.mu_from_state == 1u) {
        mu = state[0];
    }
    for (var a = 0u; a < 4u; a = a + 1u) {
        for (var b = 0u; b < 4u; b = b + 1u) {
            let i = i0 + lid.x * 4u + a;
            let jj = j0 + lid.y * 4u + b;
            if (i < params.d && jj < params.tile) {
                let at = jj * params.d + i;
                var total = acc[a][b];
                if (params.accumulate == 1u) {
                    total = g[at] + total;
                }
                if (params.finish == 1u) {
                    total = xtile[at] - mu * total;
                }
                g[at] = total;
            }
        }
    }
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
