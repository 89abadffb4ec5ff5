// relu_mask.lanes_sg: the entry `lanes` of relu_mask.wgsl, for CPU adapters whose subgroups have at
// least 8 lanes (Lavapipe: 8). It is appended to relu_mask.wgsl (and to its f16-storage variant)
// only where the device has subgroup operations (`gpu::shaders::LANE_SUBGROUP_ENTRIES`), so it
// uses that file's Params, bindings, `xat` and `positive16`.
//
// The very sums of `lanes` (each row's sum over i in increasing order with fma from 0, as the CPU
// twin); what differs is who loads what. A CPU driver runs a subgroup as the lanes of one SIMD
// register and, inside a loop, loads storage one lane at a time even where every lane reads the
// same address; so in `lanes` each lane loads all 16 rows of a coordinate itself. Here subgroup
// lane l (l < 8) loads rows 2l and 2l + 1 only, and every lane takes the sixteen values from the
// lanes that loaded them with `subgroupBroadcast`: 2 loads per lane and coordinate instead of 16.
// Lanes l >= 8 of a wider subgroup load the same rows as lane l % 8. Each invocation forms two
// neurons' words (jj and jj + 64 of the workgroup's 128), so the sixteen broadcast values serve 32
// FMAs. Every lane runs every loop to the same bound (a neuron past the tile computes the last
// neuron's bits and does not store them), as subgroup operations need.
// Dispatch: (words over x and z as `lanes`, ceil(tile / 128), ...): `gpu::relu_mask::lanes_sg_grid`.

@compute @workgroup_size(64)
fn lanes_sg(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    let j0 = wg.y * 128u + lid;
    let j1 = j0 + 64u;
    let w = wg.z * 65535u + wg.x;
    if (w >= params.words) {
        return;
    }
    let hj0 = min(j0, params.tile - 1u) * params.d;
    let hj1 = min(j1, params.tile - 1u) * params.d;
    let r0 = w * 32u;
    let nr = min(32u, params.rows - r0);
    var word0 = 0u;
    var word1 = 0u;
    for (var half = 0u; half < 2u; half = half + 1u) {
        // This lane's two rows of the sixteen (rows past the block only feed bits cleared below).
        let mine = params.x_row0 + r0 + half * 16u + 2u * (sl % 8u);
        var z0 = vec4<f32>(0.0);
        var z1 = vec4<f32>(0.0);
        var z2 = vec4<f32>(0.0);
        var z3 = vec4<f32>(0.0);
        var u0 = vec4<f32>(0.0);
        var u1 = vec4<f32>(0.0);
        var u2 = vec4<f32>(0.0);
        var u3 = vec4<f32>(0.0);
        for (var i = 0u; i < params.d; i = i + 1u) {
            let h0 = h[hj0 + i];
            let h1 = h[hj1 + i];
            let at = i * params.x_stride + mine;
            let a = xat(at);
            let b = xat(at + 1u);
            let x0 = subgroupBroadcast(a, 0u);
            let x1 = subgroupBroadcast(b, 0u);
            let x2 = subgroupBroadcast(a, 1u);
            let x3 = subgroupBroadcast(b, 1u);
            let x4 = subgroupBroadcast(a, 2u);
            let x5 = subgroupBroadcast(b, 2u);
            let x6 = subgroupBroadcast(a, 3u);
            let x7 = subgroupBroadcast(b, 3u);
            let x8 = subgroupBroadcast(a, 4u);
            let x9 = subgroupBroadcast(b, 4u);
            let x10 = subgroupBroadcast(a, 5u);
            let x11 = subgroupBroadcast(b, 5u);
            let x12 = subgroupBroadcast(a, 6u);
            let x13 = subgroupBroadcast(b, 6u);
            let x14 = subgroupBroadcast(a, 7u);
            let x15 = subgroupBroadcast(b, 7u);
            z0.x = fma(x0, h0, z0.x);
            u0.x = fma(x0, h1, u0.x);
            z0.y = fma(x1, h0, z0.y);
            u0.y = fma(x1, h1, u0.y);
            z0.z = fma(x2, h0, z0.z);
            u0.z = fma(x2, h1, u0.z);
            z0.w = fma(x3, h0, z0.w);
            u0.w = fma(x3, h1, u0.w);
            z1.x = fma(x4, h0, z1.x);
            u1.x = fma(x4, h1, u1.x);
            z1.y = fma(x5, h0, z1.y);
            u1.y = fma(x5, h1, u1.y);
            z1.z = fma(x6, h0, z1.z);
            u1.z = fma(x6, h1, u1.z);
            z1.w = fma(x7, h0, z1.w);
            u1.w = fma(x7, h1, u1.w);
            z2.x = fma(x8, h0, z2.x);
            u2.x = fma(x8, h1, u2.x);
            z2.y = fma(x9, h0, z2.y);
            u2.y = fma(x9, h1, u2.y);
            z2.z = fma(x10, h0, z2.z);
            u2.z = fma(x10, h1, u2.z);
            z2.w = fma(x11, h0, z2.w);
            u2.w = fma(x11, h1, u2.w);
            z3.x = fma(x12, h0, z3.x);
            u3.x = fma(x12, h1, u3.x);
            z3.y = fma(x13, h0, z3.y);
            u3.y = fma(x13, h1, u3.y);
            z3.z = fma(x14, h0, z3.z);
            u3.z = fma(x14, h1, u3.z);
            z3.w = fma(x15, h0, z3.w);
            u3.w = fma(x15, h1, u3.w);
        }
        word0 = word0 | (positive16(z0, z1, z2, z3) << (half * 16u));
        word1 = word1 | (positive16(u0, u1, u2, u3) << (half * 16u));
    }
    if (nr < 32u) {
        word0 = word0 & ((1u << nr) - 1u);
        word1 = word1 & ((1u << nr) - 1u);
    }
    if (j0 < params.tile) {
        bits[j0 * params.out_stride + params.out_word0 + w] = word0;
    }
    if (j1 < params.tile) {
        bits[j1 * params.out_stride + params.out_word0 + w] = word1;
    }
}
