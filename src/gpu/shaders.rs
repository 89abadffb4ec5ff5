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

/// The source of one kernel.
pub fn source(name: &str) -> &'static str {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .unwrap_or_else(|| panic!("no shader named {name}"))
}

/// The declaration of X and its accessor in every kernel that reads X.
const X_F32: &str = "@group(0) @binding(1) var<storage, read> x: array<f32>;";
const XAT_F32: &str = "fn xat(i: u32) -> f32 { return x[i]; }";

/// The f16-storage variant of a kernel that reads X (`--gpu-f16`): X bound as `array<f16>` and
/// widened to f32 by `xat`, every product and sum still in f32. `None` for a kernel that does not
/// read X (it is built as it is).
pub fn x_f16_source(source: &str) -> Option<String> {
    if !(source.contains(X_F32) && source.contains(XAT_F32)) {
        return None;
    }
    let body = source.replace(
        X_F32,
        "@group(0) @binding(1) var<storage, read> x: array<f16>;",
    );
    let body = body.replace(XAT_F32, "fn xat(i: u32) -> f32 { return f32(x[i]); }");
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
