// relu_mask: activation bits of a tile of neurons over a block of rows.
//
//   bits[jj * out_stride + out_word0 + w] bit b  =  1{ Σ_i X[32w + b, i] · h[jj * d + i] > 0 }
//   (strict >; rows counted from the block's first row, which is a multiple of 32)
//
// The sum runs over i = 0..d in order with fma, exactly as the CPU twin `cpu::relu_mask::twin`.
// Bindings:
//   0 uniform  Params  rows (rows in the block), d, tile (neurons), words (= ceil(rows / 32)),
//                      x_stride (floats between columns of X), x_row0 (first row of the block in X),
//                      out_stride (words per neuron in `bits`), out_word0 (the block's first word)
//   1 storage  x       X column-major: X[r, i] = x[i * x_stride + x_row0 + r]
//   2 storage  h       generator tile, h[jj * d + i]
//   3 storage  bits    output words
// Dispatch: (ceil(rows / 64), ceil(tile / 4), 1).

struct Params {
    rows: u32,
    d: u32,
    tile: u32,
    words: u32,
    x_stride: u32,
    x_row0: u32,
    out_stride: u32,
    out_word0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> h: array<f32>;
@group(0) @binding(3) var<storage, read_write> bits: array<u32>;

var<workgroup> words: array<atomic<u32>, 8>;

// One invocation per row (consecutive rows read consecutive addresses of X) and four neurons
// (four fma per load of X); 64 rows × 4 neurons per workgroup, whose 4 × 64 bits are gathered
// in workgroup memory and written as 4 × 2 words.
@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j0 = wg.y * 4u;
    let r = wg.x * 64u + lid;
    if (lid < 8u) {
        atomicStore(&words[lid], 0u);
    }
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
            let xv = x[i * params.x_stride + params.x_row0 + r];
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
    if (lid < 8u) {
        let q = lid / 2u;
        let w = wg.x * 2u + lid % 2u;
        if (w < params.words && j0 + q < params.tile) {
            bits[(j0 + q) * params.out_stride + params.out_word0 + w] = atomicLoad(&words[lid]);
        }
    }
}
