// reduce: norms and updates of n-vectors.
//
//   entry `partials`: part[wg] = Σ_{r in the workgroup's range} (a[r] − mu · b[r])²
//                     (mode 0 ignores b), Kahan-compensated per invocation, tree-added per
//                     workgroup; the host adds the partials in f64.
//   entry `axpy`:     a[r] = fma(−mu, b[r], a[r])  (one rounding, as armijo.update)
// Bindings:
//   0 uniform  Params  len, mode (0: ‖a‖², 1: ‖a − mu b‖²), per_group (elements per workgroup), mu
//   1 storage  a
//   2 storage  b
//   3 storage  part (partials; unused by axpy)
// Dispatch: partials (ceil(len / per_group), 1, 1); axpy (min(W, 65535), ceil(W / 65535), 1),
// W = ceil(len / 64), with workgroups of 64. The CPU twin is `cpu::reduce::twin_partials`.

struct Params {
    len: u32,
    mode: u32,
    per_group: u32,
    mu: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;

var<workgroup> scratch: array<f32, 64>;

@compute @workgroup_size(64)
fn partials(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let start = wg.x * params.per_group;
    let end = min(start + params.per_group, params.len);
    var sum = 0.0;
    var comp = 0.0;
    for (var r = start + lid; r < end; r = r + 64u) {
        var e = a[r];
        if (params.mode == 1u) {
            e = e - params.mu * b[r];
        }
        let term = e * e - comp;
        let t = sum + term;
        comp = (t - sum) - term;
        sum = t;
    }
    let total = workgroup_sum(lid, sum);
    if (lid == 0u) {
        part[wg.x] = total;
    }
}

// The sum of `v` over the workgroup's 64 invocations, by a fixed tree (the CPU twin's order); every
// invocation gets it. `--gpu-subgroups` swaps this function for subgroup sums (see
// `gpu::shaders::subgroup_source`).
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            scratch[lid] = scratch[lid] + scratch[lid + stride];
        }
        workgroupBarrier();
    }
    return scratch[0];
}

@compute @workgroup_size(64)
fn axpy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = (wg.y * 65535u + wg.x) * 64u + lid;
    if (r < params.len) {
        a[r] = fma(-params.mu, b[r], a[r]);
    }
}
