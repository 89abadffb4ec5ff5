// relu_mask.lanes_sg: the entry `lanes` of relu_mask.wgsl, for CPU adapters whose subgroups have at
// least 8 lanes (Lavapipe: 8). It is appended to relu_mask.wgsl (and to its f16-storage variant)
// only where the device has subgroup operations (`gpu::shaders::LANE_SUBGROUP_ENTRIES`), so it
// uses that file's Params, bindings, `xat` and `positive16`.
//
// Same work and the very sums of `lanes` (each row's sum over i in increasing order with fma from
// 0, as the CPU twin): invocation jj is one neuron, a workgroup forms mask word w (32 rows) of 64
// neurons, 16 rows at a time. What differs is who loads X. A CPU driver runs a subgroup as the
// lanes of one SIMD register and, inside a loop, loads storage one lane at a time even where every
// lane reads the same address; so in `lanes` each lane loads all 16 rows of a coordinate itself.
// Here subgroup lane l (l < 8) loads rows 2l and 2l + 1 only, and every lane takes the sixteen
// values from the lanes that loaded them with `subgroupBroadcast`: 2 loads per lane and
// coordinate instead of 16. Lanes l >= 8 of a wider subgroup load the same rows as lane l % 8.
// Every lane runs every loop to the same bound (a neuron past the tile computes the last
// neuron's bits and does not store them), as subgroup operations need.
// Dispatch: as `lanes` (`gpu::relu_mask::lanes_grid`).

@compute @workgroup_size(64)
fn lanes_sg(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    let jj = wg.y * 64u + lid;
    let w = wg.z * 65535u + wg.x;
    if (w >= params.words) {
        return;
    }
    let hj = min(jj, params.tile - 1u) * params.d;
    let r0 = w * 32u;
    let nr = min(32u, params.rows - r0);
    var word = 0u;
    for (var half = 0u; half < 2u; half = half + 1u) {
        // This lane's two rows of the sixteen (within X's padded column: see `xat4`; rows past
        // the block only feed bits that are cleared below).
        let mine = params.x_row0 + r0 + half * 16u + 2u * (sl % 8u);
        var z0 = vec4<f32>(0.0);
        var z1 = vec4<f32>(0.0);
        var z2 = vec4<f32>(0.0);
        var z3 = vec4<f32>(0.0);
        for (var i = 0u; i < params.d; i = i + 1u) {
            let hv = h[hj + i];
            let at = i * params.x_stride + mine;
            let a = xat(at);
            let b = xat(at + 1u);
            z0.x = fma(subgroupBroadcast(a, 0u), hv, z0.x);
            z0.y = fma(subgroupBroadcast(b, 0u), hv, z0.y);
            z0.z = fma(subgroupBroadcast(a, 1u), hv, z0.z);
            z0.w = fma(subgroupBroadcast(b, 1u), hv, z0.w);
            z1.x = fma(subgroupBroadcast(a, 2u), hv, z1.x);
            z1.y = fma(subgroupBroadcast(b, 2u), hv, z1.y);
            z1.z = fma(subgroupBroadcast(a, 3u), hv, z1.z);
            z1.w = fma(subgroupBroadcast(b, 3u), hv, z1.w);
            z2.x = fma(subgroupBroadcast(a, 4u), hv, z2.x);
            z2.y = fma(subgroupBroadcast(b, 4u), hv, z2.y);
            z2.z = fma(subgroupBroadcast(a, 5u), hv, z2.z);
            z2.w = fma(subgroupBroadcast(b, 5u), hv, z2.w);
            z3.x = fma(subgroupBroadcast(a, 6u), hv, z3.x);
            z3.y = fma(subgroupBroadcast(b, 6u), hv, z3.y);
            z3.z = fma(subgroupBroadcast(a, 7u), hv, z3.z);
            z3.w = fma(subgroupBroadcast(b, 7u), hv, z3.w);
        }
        word = word | (positive16(z0, z1, z2, z3) << (half * 16u));
    }
    if (nr < 32u) {
        word = word & ((1u << nr) - 1u);
    }
    if (jj < params.tile) {
        bits[jj * params.out_stride + params.out_word0 + w] = word;
    }
}
