//! Every WGSL kernel parses and validates with naga, with no GPU.

use relu_iht::gpu::shaders::SHADERS;

#[test]
fn every_shader_validates_with_naga() {
    // The registry holds every file under shaders/ (none is left out of the binary or the test).
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "wgsl")
        })
        .count();
    assert_eq!(
        SHADERS.len() + relu_iht::gpu::shaders::LANE_SUBGROUP_ENTRIES.len(),
        files
    );
    for (name, src) in SHADERS {
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(src)));
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        );
        validator.validate(&module).unwrap_or_else(|e| {
            panic!("{name}.wgsl does not validate:\n{}", e.emit_to_string(src))
        });
        assert!(
            !module.entry_points.is_empty(),
            "{name}.wgsl has no entry point"
        );
        for ep in &module.entry_points {
            assert_eq!(ep.stage, naga::ShaderStage::Compute, "{name}: {}", ep.name);
        }
    }
}

/// The f16-storage variants (`--gpu-f16`) of the kernels that read X validate with naga under the
/// f16 capability, and exactly those kernels have one.
#[test]
fn every_f16_storage_variant_validates_with_naga() {
    let mut with = Vec::new();
    for (name, src) in SHADERS {
        let Some(v) = relu_iht::gpu::shaders::x_f16_source(src) else {
            assert!(
                !src.contains("fn xat("),
                "{name} reads X but has no f16 variant"
            );
            continue;
        };
        with.push(*name);
        let module = naga::front::wgsl::parse_str(&v)
            .unwrap_or_else(|e| panic!("{name} (f16) does not parse:\n{}", e.emit_to_string(&v)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::SHADER_FLOAT16,
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name} (f16) does not validate:\n{}", e.emit_to_string(&v)));
        assert!(v.contains("x: array<vec4<f16>>") && !v.contains("x: array<vec4<f32>>"));
        assert!(v.contains("fn xat(") && v.contains("fn xat4("));
    }
    with.sort_unstable();
    assert_eq!(
        with,
        [
            "masked_gradient",
            "relu_mask",
            "support_adjoint",
            "support_forward",
            "vector_model"
        ]
    );
}

/// The subgroup variants (`--gpu-subgroups`) of the kernels that sum over a workgroup validate with
/// naga under the subgroup capability, alone and with the f16 variant; exactly those kernels have
/// one.
#[test]
fn every_subgroup_variant_validates_with_naga() {
    use relu_iht::gpu::shaders::{subgroup_source, variant};
    let mut with = Vec::new();
    for (name, src) in SHADERS {
        if subgroup_source(src).is_none() {
            assert!(!src.contains("fn workgroup_sum("), "{name}");
            continue;
        }
        with.push(*name);
        for x_f16 in [false, true] {
            let v = variant(src, x_f16, true);
            validate_with_subgroups(&format!("{name} (subgroups)"), &v);
            assert!(v.contains("subgroupAdd(v)") && !v.contains("stride = stride / 2u"));
        }
    }
    with.sort_unstable();
    assert_eq!(with, ["reduce", "support_adjoint"]);
}

/// The CPU adapters' subgroup entries validate with naga under the subgroup capability as part of
/// their kernel, with X in f32 and in f16, and each adds entry points the kernel lacks.
#[test]
fn every_lane_subgroup_entry_validates_with_naga() {
    use relu_iht::gpu::shaders::{lane_subgroup_source, source, variant, LANE_SUBGROUP_ENTRIES};
    for (name, _) in LANE_SUBGROUP_ENTRIES {
        let base = naga::front::wgsl::parse_str(source(name)).unwrap();
        for x_f16 in [false, true] {
            let v = lane_subgroup_source(name, &variant(source(name), x_f16, false)).unwrap();
            let module = validate_with_subgroups(&format!("{name} (lane subgroups)"), &v);
            assert!(
                module.entry_points.len() > base.entry_points.len(),
                "{name}"
            );
            assert_eq!(x_f16, v.contains("array<vec4<f16>>"), "{name}");
        }
    }
    assert!(lane_subgroup_source("topk", "").is_none());
    // The f32 build of the gradient kernel (`--gpu-f16`) has the entries of the kernel.
    assert!(lane_subgroup_source("masked_gradient_f32", "").is_some());
}

/// Parses `source` and validates it with naga under the subgroup and f16 capabilities (every
/// subgroup operation, compute stage); `what` names it in a failure.
fn validate_with_subgroups(what: &str, source: &str) -> naga::Module {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{what} does not parse:\n{}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::SUBGROUP | naga::valid::Capabilities::SHADER_FLOAT16,
    )
    .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
    .subgroup_operations(naga::valid::SubgroupOperationSet::all())
    .validate(&module)
    .unwrap_or_else(|e| panic!("{what} does not validate:\n{}", e.emit_to_string(source)));
    module
}
