// masked_gradient: the gradient of a tile of neurons over a block of rows, fused with the
// candidate step.
//
//   acc[jj, i] = Σ_r X[r, i] · bit(jj, r) · res[r]            (r over the block's rows)
//   g[jj * d + i] = (accumulate ? g[jj * d + i] : 0) + acc[jj, i]
//   and when finish = 1:  g[jj * d + i] = xtile[jj * d + i] − mu · g[jj * d + i]
//
// Tiled in workgroup memory: a 16 × 16 workgroup owns 16 coordinates × 16 neurons and walks the
// rows 16 at a time, staging X[rows, coords] and the masked residual P[rows, neurons].
// Bindings:
//   0 uniform  Params   rows, d, tile, words (per neuron, this block), x_stride, x_row0, r_row0,
//                       accumulate (0/1), finish (0/1), mu
//   1 storage  x        X column-major: X[r, i] = x[i * x_stride + x_row0 + r]
//   2 storage  res      residual, res[r_row0 + r]
//   3 storage  bits     masks of this block, bits[jj * words + r / 32]
//   4 storage  xtile    current weights of the tile, dense, xtile[jj * d + i]
//   5 storage  g        output, g[jj * d + i]
// Dispatch: (ceil(d / 16), ceil(tile / 16), 1).

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
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> res: array<f32>;
@group(0) @binding(3) var<storage, read> bits: array<u32>;
@group(0) @binding(4) var<storage, read> xtile: array<f32>;
@group(0) @binding(5) var<storage, read_write> g: array<f32>;

var<workgroup> xs: array<array<f32, 16>, 16>;
var<workgroup> ps: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = wg.x * 16u + lid.x;
    let jj = wg.y * 16u + lid.y;
    var acc = 0.0;
    for (var r0 = 0u; r0 < params.rows; r0 = r0 + 16u) {
        // Thread (lx, ly) stages X[r0 + ly, wg.x*16 + lx] and P[r0 + lx, wg.y*16 + ly].
        let xr = r0 + lid.y;
        let xi = wg.x * 16u + lid.x;
        var xv = 0.0;
        if (xr < params.rows && xi < params.d) {
            xv = x[xi * params.x_stride + params.x_row0 + xr];
        }
        xs[lid.y][lid.x] = xv;
        let pr = r0 + lid.x;
        let pj = wg.y * 16u + lid.y;
        var pv = 0.0;
        if (pr < params.rows && pj < params.tile) {
            let word = bits[pj * params.words + pr / 32u];
            if (((word >> (pr % 32u)) & 1u) == 1u) {
                pv = res[params.r_row0 + pr];
            }
        }
        ps[lid.x][lid.y] = pv;
        workgroupBarrier();
        for (var k = 0u; k < 16u; k = k + 1u) {
            acc = fma(xs[k][lid.x], ps[k][lid.y], acc);
        }
        workgroupBarrier();
    }
    if (i >= params.d || jj >= params.tile) {
        return;
    }
    let at = jj * params.d + i;
    var total = acc;
    if (params.accumulate == 1u) {
        total = g[at] + acc;
    }
    if (params.finish == 1u) {
        total = xtile[at] - params.mu * total;
    }
    g[at] = total;
}
