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
// Dispatch: (ceil(words / 64), tile, 1); one invocation writes one 32-row word of one neuron.

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

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = gid.x;
    let jj = gid.y;
    if (w >= params.words || jj >= params.tile) {
        return;
    }
    var word = 0u;
    for (var b = 0u; b < 32u; b = b + 1u) {
        let r = w * 32u + b;
        if (r >= params.rows) {
            break;
        }
        var z = 0.0;
        for (var i = 0u; i < params.d; i = i + 1u) {
            z = fma(x[i * params.x_stride + params.x_row0 + r], h[jj * params.d + i], z);
        }
        if (z > 0.0) {
            word = word | (1u << b);
        }
    }
    bits[jj * params.out_stride + params.out_word0 + w] = word;
}
