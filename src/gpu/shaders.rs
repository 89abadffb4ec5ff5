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
