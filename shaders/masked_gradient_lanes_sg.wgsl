// masked_gradient.lanes_sg: the entry `lanes` of masked_gradient.wgsl, for CPU adapters whose
// subgroups have at least 8 lanes (Lavapipe: 8). It is appended to masked_gradient.wgsl (and to its
// f16-storage and f32 builds) only where the device has subgroup operations
// (`gpu::shaders::LANE_SUBGROUP_ENTRIES`), so it uses that file's Params, bindings, `xat4` and
// `rows_one_at_a_time`.
//
// Same work and the very sums of `lanes` (coordinate i of 16 neurons over the split's rows, in
// order with fma from 0). What differs is who loads what every lane needs: a CPU driver runs a
// subgroup as the lanes of one SIMD register and, inside a loop, loads storage one lane at a time
// even where every lane reads the same address. Here, for a shared residual (res_stride = 0),
// subgroup lane k = l % 8 loads the residual of row r + k % 4 of four rows and the mask words of
// neurons k and k + 8, and `subgroupBroadcast` hands them to every lane: per 32 rows, 8 + 2 loads
// per lane instead of 32 + 16. Every lane runs every loop to the same bound (a lane past d sums
// coordinate d - 1 and does not store it; a neuron past the tile reads the last neuron's word and
// is not stored), as subgroup operations need.
// Dispatch: as `lanes`.

@compute @workgroup_size(64)
fn lanes_sg(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    let j0 = wg.y * 16u;
    let i = wg.x * 64u + lid;
    // A subgroup wholly past d leaves (the rest run every loop together).
    if (j0 >= params.tile || subgroupMin(i) >= params.d) {
        return;
    }
    let ic = min(i, params.d - 1u);
    let ra = wg.z * params.split_rows;
    let rb = min(ra + params.split_rows, params.rows);
    let nj = min(16u, params.tile - j0);
    let k = sl % 8u;
    let last = params.tile - 1u;
    // Zero, as every WGSL variable starts.
    var acc: array<f32, 16>;
    var word: array<u32, 16>;
    let xc = ic * params.x_stride + params.x_row0;
    var r = ra;
    while (r < rb) {
        let end = min(rb, (r / 32u + 1u) * 32u);
        if (params.res_stride == 0u) {
            let at = params.bits0 + r / 32u;
            let wa = bits[at + min(j0 + k, last) * params.words];
            let wb = bits[at + min(j0 + k + 8u, last) * params.words];
            word[0] = subgroupBroadcast(wa, 0u);
            word[8] = subgroupBroadcast(wb, 0u);
            word[1] = subgroupBroadcast(wa, 1u);
            word[9] = subgroupBroadcast(wb, 1u);
            word[2] = subgroupBroadcast(wa, 2u);
            word[10] = subgroupBroadcast(wb, 2u);
            word[3] = subgroupBroadcast(wa, 3u);
            word[11] = subgroupBroadcast(wb, 3u);
            word[4] = subgroupBroadcast(wa, 4u);
            word[12] = subgroupBroadcast(wb, 4u);
            word[5] = subgroupBroadcast(wa, 5u);
            word[13] = subgroupBroadcast(wb, 5u);
            word[6] = subgroupBroadcast(wa, 6u);
            word[14] = subgroupBroadcast(wb, 6u);
            word[7] = subgroupBroadcast(wa, 7u);
            word[15] = subgroupBroadcast(wb, 7u);
            // Four rows at a time: one vec4 load of X (r starts at a multiple of 32 and xc is a
            // multiple of 4, see `xat4`) and one residual per lane k < 4, broadcast. The rows are
            // summed in order.
            for (; r + 4u <= end; r = r + 4u) {
                let xv = xat4((xc + r) / 4u);
                let mine = res[params.r_row0 + r + k % 4u];
                var rv: array<f32, 4>;
                rv[0] = subgroupBroadcast(mine, 0u);
                rv[1] = subgroupBroadcast(mine, 1u);
                rv[2] = subgroupBroadcast(mine, 2u);
                rv[3] = subgroupBroadcast(mine, 3u);
                let sh = r % 32u;
                for (var q = 0u; q < 4u; q = q + 1u) {
                    for (var b = 0u; b < 16u; b = b + 1u) {
                        let on = ((word[b] >> (sh + q)) & 1u) == 1u;
                        acc[b] = fma(xv[q], select(0.0, rv[q], on), acc[b]);
                    }
                }
            }
        }
        rows_one_at_a_time(&acc, word, xc, j0, nj, r, end);
        r = end;
    }
    if (i < params.d) {
        for (var b = 0u; b < nj; b = b + 1u) {
            part[(wg.z * params.tile + j0 + b) * params.d + i] = acc[b];
        }
    }
}
