// vector_model: the row-wise passes of the vector-output model (SPEC §3) for a tile of live
// neurons; the two gradients are `masked_gradient` with a per-neuron residual.
//
//   hidden:    H[jj, g] = bit(jj, g) · Σ_i X[r, i] · w1[jj * d + i]       (g = row0 + r)
//   output:    out[c, g] = (accumulate ? out[c, g] : 0) + Σ_jj H[jj, g] · w2[jj * k + c]
//   residual:  loss 1 (MSE):  e = out[c, g] − y[c, g];  out[c, g] = e / n;  lossv[g] = Σ_c e² / 2
//              loss 2 (softmax cross-entropy, max subtracted):
//                         p = exp(out − max) / Σ exp(out − max);  out[c, g] = (p − y[c, g]) / n;
//                         lossv[g] = −Σ_c y[c, g] · ln(max(p, 1e-30))
//   backprop:  Q[jj, g] = bit(jj, g) · Σ_c out[c, g] · w2[jj * k + c]      (out holds R)
//
// Every sum runs in index order with fma, exactly as the CPU twins in `cpu::vector_model`.
// H and Q are stored per neuron over the whole batch: H[jj, g] = hq[jj * n + g]; `out` and `y`
// are column-major k × n: out[c, g] = out[c * n + g]. Bits cover the whole batch:
// bit(jj, g) = bits[jj * words + g / 32] >> (g % 32) & 1.
// Bindings (each entry point uses the ones it reads):
//   0 uniform  Params  rows (of this block; hidden), d, tile, k, x_stride, x_row0, row0, n,
//                      words, accumulate, loss
//   1 storage  x       X column-major: X[r, i] = x[i * x_stride + x_row0 + r] (f32, or f16 with `--gpu-f16`)       (hidden)
//   2 storage  w       w1 tile (hidden) or w2 tile (output, backprop)
//   3 storage  bits    activation bits                                          (hidden, backprop)
//   4 storage  hq      H (hidden writes, output reads) or Q (backprop writes)
//   5 storage  out     Ŷ then R
//   6 storage  y       targets, column-major                                     (residual)
//   7 storage  lossv   per-row loss                                              (residual)
// Dispatch: hidden (ceil(rows / 64), ceil(tile / 4)); output, residual (rows grid of n);
//           backprop (rows grid of n, tile in z). A rows grid of W = ceil(n / 64) workgroups is
//           (min(W, 65535), ceil(W / 65535)).

struct Params {
    rows: u32,
    d: u32,
    tile: u32,
    k: u32,
    x_stride: u32,
    x_row0: u32,
    row0: u32,
    n: u32,
    words: u32,
    accumulate: u32,
    loss: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
// Every read of X goes through `xat` (one value) or `xat4` (four rows of a column, at a vec4
// index; the column stride and the block's first row are multiples of 4): the f16-storage
// variant of the pipeline swaps these lines (see `gpu::shaders::x_f16_source`).
fn xat(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }
fn xat4(i: u32) -> vec4<f32> { return x[i]; }
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bits: array<u32>;
@group(0) @binding(4) var<storage, read_write> hq: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> y: array<f32>;
@group(0) @binding(7) var<storage, read_write> lossv: array<f32>;

fn bit(jj: u32, g: u32) -> bool {
    return ((bits[jj * params.words + g / 32u] >> (g % 32u)) & 1u) == 1u;
}

// One invocation per row and four neurons (four fma per load of X).
@compute @workgroup_size(64)
fn hidden(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    let j0 = gid.y * 4u;
    if (r >= params.rows) {
        return;
    }
    var wrow = vec4<u32>(j0, j0, j0, j0);
    for (var q = 0u; q < 4u; q = q + 1u) {
        if (j0 + q < params.tile) {
            wrow[q] = j0 + q;
        }
    }
    var z = vec4<f32>(0.0);
    for (var i = 0u; i < params.d; i = i + 1u) {
        let xv = xat(i * params.x_stride + params.x_row0 + r);
        let wv = vec4<f32>(
            w[wrow.x * params.d + i],
            w[wrow.y * params.d + i],
            w[wrow.z * params.d + i],
            w[wrow.w * params.d + i],
        );
        z = fma(vec4<f32>(xv), wv, z);
    }
    let g = params.row0 + r;
    for (var q = 0u; q < 4u; q = q + 1u) {
        let jj = j0 + q;
        if (jj < params.tile) {
            var h = 0.0;
            if (bit(jj, g)) {
                h = z[q];
            }
            hq[jj * params.n + g] = h;
        }
    }
}

// The invocation's row for the row-wise entries: workgroups laid out in 2-D (x up to 65 535), so
// any n fits the grid.
fn row_of(wg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * 65535u + wg.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn output(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = row_of(wg, lid);
    if (g >= params.n) {
        return;
    }
    for (var c = 0u; c < params.k; c = c + 1u) {
        var acc = 0.0;
        if (params.accumulate == 1u) {
            acc = out[c * params.n + g];
        }
        for (var jj = 0u; jj < params.tile; jj = jj + 1u) {
            acc = fma(hq[jj * params.n + g], w[jj * params.k + c], acc);
        }
        out[c * params.n + g] = acc;
    }
}

@compute @workgroup_size(64)
fn residual(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = row_of(wg, lid);
    if (g >= params.n) {
        return;
    }
    let nf = f32(params.n);
    var total = 0.0;
    if (params.loss == 1u) {
        for (var c = 0u; c < params.k; c = c + 1u) {
            let e = out[c * params.n + g] - y[c * params.n + g];
            out[c * params.n + g] = e / nf;
            total = fma(e, e, total);
        }
        total = 0.5 * total;
    } else {
        var mx = out[g];
        for (var c = 1u; c < params.k; c = c + 1u) {
            mx = max(mx, out[c * params.n + g]);
        }
        var sum = 0.0;
        for (var c = 0u; c < params.k; c = c + 1u) {
            sum = sum + exp(out[c * params.n + g] - mx);
        }
        for (var c = 0u; c < params.k; c = c + 1u) {
            let p = exp(out[c * params.n + g] - mx) / sum;
            let yv = y[c * params.n + g];
            out[c * params.n + g] = (p - yv) / nf;
            if (yv > 0.0) {
                total = total - yv * log(max(p, 1e-30));
            }
        }
    }
    lossv[g] = total;
}

@compute @workgroup_size(64)
fn backprop(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = row_of(wg, lid);
    let jj = wg.z;
    if (g >= params.n || jj >= params.tile) {
        return;
    }
    var acc = 0.0;
    if (bit(jj, g)) {
        for (var c = 0u; c < params.k; c = c + 1u) {
            acc = fma(out[c * params.n + g], w[jj * params.k + c], acc);
        }
    }
    hq[jj * params.n + g] = acc;
}
