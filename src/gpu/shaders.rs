//! The one registry of WGSL sources (`shaders/<kernel>.wgsl`), compiled into the binary.

/// `(kernel name, WGSL source)` for every kernel; the name is also the label suffix
/// (`relu-iht.<kernel>`) and the CPU twin's module name.
pub const SHADERS: &[(&str, &str)] = &[
    ("relu_mask", include_str!("../../shaders/relu_mask.wgsl")),
    (
        "masked_gradient",
        include_str!("../../shaders/masked_gradient.wgsl"),
    ),
    (
        "support_forward",
        include_str!("../../shaders/support_forward.wgsl"),
    ),
    (
        "support_adjoint",
        include_str!("../../shaders/support_adjoint.wgsl"),
    ),
    ("reduce", include_str!("../../shaders/reduce.wgsl")),
    ("armijo", include_str!("../../shaders/armijo.wgsl")),
    ("topk", include_str!("../../shaders/topk.wgsl")),
    (
        "vector_model",
        include_str!("../../shaders/vector_model.wgsl"),
    ),
];

/// Entry points appended to a kernel's source (after its variants) where the device is a CPU
/// adapter with subgroup operations of at least 8 lanes ([`GpuContext::lane_subgroups`]): `(kernel
/// name, WGSL of the entries)`. They use the kernel's own declarations, so they are validated as
/// part of it (`lane_subgroup_source`).
///
/// [`GpuContext::lane_subgroups`]: super::context::GpuContext::lane_subgroups
pub const LANE_SUBGROUP_ENTRIES: &[(&str, &str)] = &[
    (
        "relu_mask",
        include_str!("../../shaders/relu_mask_lanes_sg.wgsl"),
    ),
    (
        "masked_gradient",
        include_str!("../../shaders/masked_gradient_lanes_sg.wgsl"),
    ),
];

/// `source` (a kernel's source, its variants applied) with the entries [`LANE_SUBGROUP_ENTRIES`]
/// holds for kernel `name` (or for the kernel whose f32 build `name` is, `<kernel>_f32`); `None`
/// for a kernel without any.
pub fn lane_subgroup_source(name: &str, source: &str) -> Option<String> {
    let kernel = name.strip_suffix("_f32").unwrap_or(name);
    LANE_SUBGROUP_ENTRIES
        .iter()
        .find(|(n, _)| *n == kernel)
        .map(|(_, entries)| format!("{source}\n{entries}"))
}

/// The source of one kernel.
pub fn source(name: &str) -> &'static str {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .unwrap_or_else(|| panic!("no shader named {name}"))
}

/// The declaration of X and its accessors in every kernel that reads X: X is bound as vec4s (its
/// column stride and every block's first row are multiples of 4 rows, see
/// `gpu::workspace::x_stride`), `xat` reads one value and `xat4` four rows of a column.
const X_F32: &str = "@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;";
const XAT_F32: &str = "fn xat(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }
fn xat4(i: u32) -> vec4<f32> { return x[i]; }";

/// The f16-storage variant of a kernel that reads X (`--gpu-f16`): X bound as `array<vec4<f16>>`
/// and widened to f32 by `xat` and `xat4`, every product and sum still in f32. `None` for a
/// kernel that does not read X (it is built as it is).
pub fn x_f16_source(source: &str) -> Option<String> {
    if !(source.contains(X_F32) && source.contains(XAT_F32)) {
        return None;
    }
    let body = source.replace(
        X_F32,
        "@group(0) @binding(1) var<storage, read> x: array<vec4<f16>>;",
    );
    let body = body.replace(
        XAT_F32,
        "fn xat(i: u32) -> f32 { return f32(x[i >> 2u][i & 3u]); }
fn xat4(i: u32) -> vec4<f32> { return vec4<f32>(x[i]); }",
    );
    Some(format!("enable f16;\n{body}"))
}

/// X's values as the f16-storage kernels read them: each rounded to the nearest f16 (ties to
/// even) and widened back. The CPU twin of an f16 run is the f32 twin on these values.
pub fn round_to_f16(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

/// X's values as f16 bits for upload, padded to an even count (buffer writes are whole words).
pub fn f16_bits(v: &[f32]) -> Vec<u16> {
    let mut out: Vec<u16> = v
        .iter()
        .map(|&x| half::f16::from_f32(x).to_bits())
        .collect();
    if out.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// The subgroup variant of a kernel that sums over its workgroup (`--gpu-subgroups`): its
/// `workgroup_sum` adds within each subgroup (`subgroupAdd`), then the subgroups' sums in subgroup
/// order, one barrier instead of seven; every entry point reads its subgroup's place. `None` for
/// a kernel without `workgroup_sum`. The sums are the same on a given device from run to run, but
/// in another order than the CPU twin's tree (equal to rounding, not to the bit).
pub fn subgroup_source(source: &str) -> Option<String> {
    const ENTRY: &str = "@builtin(local_invocation_index) lid: u32) {";
    let start = source.find("fn workgroup_sum(lid: u32, v: ")?;
    let end = start + source[start..].find("\n}\n")? + 3;
    let signature = &source[start..start + source[start..].find('{')?];
    let scratch = if source.contains("var<workgroup> partial:") {
        "partial"
    } else {
        "scratch"
    };
    let body = format!(
        "{signature}{{
    let s = subgroupAdd(v);
    if (sg.z == 0u) {{
        {scratch}[sg.x] = s;
    }}
    workgroupBarrier();
    var total = {scratch}[0];
    for (var k = 1u; k < sg.y; k = k + 1u) {{
        total = total + {scratch}[k];
    }}
    return total;
}}
"
    );
    let mut out = String::with_capacity(source.len() + 512);
    out.push_str(&source[..start]);
    out.push_str(&body);
    out.push_str(&source[end..]);
    let entry = "@builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) sg_count: u32, @builtin(subgroup_invocation_id) sg_lane: u32) {
    sg = vec3<u32>(sg_id, sg_count, sg_lane);";
    let out = out.replace(ENTRY, entry);
    Some(format!(
        "{out}\n// This invocation's subgroup, the number of subgroups, its lane.\nvar<private> sg: vec3<u32>;\n"
    ))
}

/// A kernel's source with the variants asked for applied (each where the kernel has one).
pub fn variant(source: &str, x_f16: bool, subgroups: bool) -> String {
    let mut out = source.to_string();
    if x_f16 {
        out = x_f16_source(&out).unwrap_or(out);
    }
    if subgroups {
        out = subgroup_source(&out).unwrap_or(out);
    }
    out
}
