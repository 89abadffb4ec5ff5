//! The WebGPU engine: each kernel against its CPU twin on random non-zero inputs of awkward
//! shapes, the engine against the CPU engine, streaming under a small memory budget, and a whole
//! planted solve. With `RELU_IHT_REQUIRE_GPU=1` (CI) a missing adapter fails these tests; without
//! it they print why they skip.

use super::common::*;
use super::twins::{vector_blocks, vector_targets, vector_twin_step, Layout};
use relu_iht::backend::SupportOps;
use relu_iht::cpu::armijo as cpu_armijo;
use relu_iht::cpu::masked_gradient::{self, GradientBlock};
use relu_iht::cpu::support_forward::RowBlock;
use relu_iht::cpu::topk as cpu_topk;
use relu_iht::cpu::vector_model::{self, TileLayout};
use relu_iht::cpu::{reduce, relu_mask, support_adjoint, support_forward, CpuBackend};
use relu_iht::gpu::buffers::Recorder;
use relu_iht::gpu::masked_gradient as gpu_masked_gradient;
use relu_iht::gpu::masked_gradient::Params as MaskedGradientParams;
use relu_iht::gpu::reduce::Params as ReduceParams;
use relu_iht::gpu::relu_mask as gpu_relu_mask;
use relu_iht::gpu::relu_mask::Params as ReluMaskParams;
use relu_iht::gpu::support_adjoint::Params as SupportAdjointParams;
use relu_iht::gpu::support_forward::Params as SupportForwardParams;
use relu_iht::gpu::vector_model::Params as VectorModelParams;
use relu_iht::gpu::workspace;
use relu_iht::gpu::{armijo, topk};
use relu_iht::gpu::{GpuBackend, GpuContext};
use relu_iht::problem::data::Data;
use relu_iht::problem::model::{Loss, Select};
use relu_iht::problem::operator::{Generators, Mode, Operator};
use relu_iht::problem::sparse::SparseVec;
use relu_iht::problem::topk::TopS;
use relu_iht::solver::depth::fit_vector_layers;
use relu_iht::solver::scalar::IhtConfig;
use relu_iht::solver::vector::VectorConfig;
use relu_iht::tasks::planted::{self, PlantedSpec, Teacher};
use relu_iht::Backend;
use std::sync::{Arc, OnceLock};

/// The one device of this test binary (pipelines compile once), or `None` with a printed reason.
pub fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    let ctx = CTX.get_or_init(|| {
        GpuContext::new(false)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    });
    let required = std::env::var("RELU_IHT_REQUIRE_GPU").is_ok_and(|v| v == "1");
    match ctx {
        Ok(ctx) => {
            if required
                && std::env::var("WGPU_BACKEND").is_ok_and(|b| b.eq_ignore_ascii_case("vulkan"))
            {
                assert_eq!(
                    ctx.adapter.backend, "Vulkan",
                    "WGPU_BACKEND=vulkan but got {:?}",
                    ctx.adapter
                );
            }
            Some(ctx.clone())
        }
        Err(e) if required => panic!("RELU_IHT_REQUIRE_GPU=1 but no GPU: {e}"),
        Err(e) => {
            eprintln!("skipping GPU test: {e} (set RELU_IHT_REQUIRE_GPU=1 to make this fail)");
            None
        }
    }
}

/// The generators of `neurons` as runs of nonzeros (start, cols, vals).
fn sparse_runs(op: &Operator, neurons: &[u32]) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let (mut start, mut cols, mut vals) = (vec![0u32], Vec::new(), Vec::new());
    for &j in neurons {
        for (i, v) in op.generator(j).into_iter().enumerate() {
            if v != 0.0 {
                cols.push(i as u32);
                vals.push(v);
            }
        }
        start.push(cols.len() as u32);
    }
    (start, cols, vals)
}

#[test]
fn relu_mask_and_masked_gradient_match_twins() {
    let Some(ctx) = gpu() else { return };
    if ctx.adapter.driver.contains("llvmpipe") {
        assert!(
            ctx.lane_subgroups,
            "Lavapipe offers 8-lane subgroups: the subgroup entries must be built and tested"
        );
    }
    let mut rng = rng(30);
    // Beyond the awkward shapes: several 16-coordinate steps and two 64-neuron tiles of the GEMMs,
    // and two workgroups of coordinates and of neurons for the gradient's (64 × 128).
    for &(n, d, m) in SHAPES.iter().chain(&[(300, 37, 70), (200, 70, 150)]) {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            let neurons = op.live_neurons();
            let t = neurons.len();
            let h: Vec<f32> = neurons.iter().flat_map(|&j| op.generator(j)).collect();
            let words = n.div_ceil(32);
            // X as the device holds it: the column stride a multiple of 4 (vec4 loads).
            // (A data set's own column stride may be larger: see `column_stride`.)
            let xs = workspace::x_stride(n) as u32;
            let xdev = workspace::device_columns(op.data(), 0..n);
            let xb = ctx.storage_init("x", &xdev);
            let hb = ctx.storage_init("h", &h);
            let bits = ctx.storage("bits", (t * words * 4) as u64);
            let p = ReluMaskParams::new(n, d, t, (xs, 0), words, 0);
            let want = relu_mask::twin(&xdev, xs as usize, 0, n, d, &h, t);
            // The dense entries, whichever `encode` would pick for this shape and adapter (the
            // subgroup form of `lanes` where the device has it: on Lavapipe it must).
            let lanes_sg = ctx.lane_subgroups.then_some(("relu_mask.lanes_sg", 128));
            for (entry, per_group) in [
                ("relu_mask.main", 64),
                ("relu_mask.rows", 4),
                ("relu_mask.lanes", 0),
            ]
            .into_iter()
            .chain(lanes_sg)
            {
                let mut enc = Recorder::new(&ctx);
                enc.clear(&bits, 0, (t * words * 4) as u64);
                let groups = if per_group == 0 {
                    gpu_relu_mask::lanes_grid(&p)
                } else if per_group == 128 {
                    gpu_relu_mask::lanes_sg_grid(&p)
                } else {
                    (groups64(n), t.div_ceil(per_group) as u32, 1)
                };
                enc.dispatch(entry, &p, &[&xb, &hb, &bits], groups);
                let got = enc.read_one::<u32>(&bits, 0, t * words).unwrap();
                assert_eq!(
                    got, want,
                    "{entry} n={n} d={d} m={m}: masks must match exactly"
                );
            }
            // The sparse entry, from the second run on (run0 > 0), gives the same bits.
            let (start, cols, vals) = sparse_runs(&op, &neurons);
            let tail = t.saturating_sub(1).max(1).min(t);
            let run0 = t - tail;
            let sparse_twin =
                relu_mask::twin_sparse(&xdev, xs as usize, 0, n, &start, &cols, &vals, run0, tail);
            assert_eq!(
                sparse_twin,
                want[run0 * words..],
                "relu_mask sparse twin n={n} d={d} m={m}: the dense twin's bits"
            );
            if tail == 0 {
                continue;
            }
            let sb = ctx.storage("bits", (tail * words * 4) as u64);
            let (stb, cb, vb) = (
                ctx.storage_init("start", &start),
                ctx.storage_init("cols", &pad4(&cols)),
                ctx.storage_init("vals", &pad4(&vals)),
            );
            let sp = ReluMaskParams {
                run0: run0 as u32,
                ..ReluMaskParams::new(n, d, tail, (xs, 0), words, 0)
            };
            // Both sparse entries (GPUs: a row per invocation; CPU adapters: a word).
            for (entry, groups) in [
                (
                    "relu_mask.sparse",
                    (groups64(n), tail.div_ceil(16) as u32, 1),
                ),
                ("relu_mask.sparse_lanes", (groups64(words), tail as u32, 1)),
            ] {
                let mut enc = Recorder::new(&ctx);
                enc.clear(&sb, 0, (tail * words * 4) as u64);
                enc.dispatch(entry, &sp, &[&xb, &sb, &stb, &cb, &vb], groups);
                let got = enc.read_one::<u32>(&sb, 0, tail * words).unwrap();
                assert_eq!(
                    got, sparse_twin,
                    "{entry} n={n} d={d} m={m}: masks must match exactly"
                );
            }

            // The gradient, split over the rows, with the masks read at an offset (as the engine
            // reads the support's masks); pairwise sums of the splits as the twin.
            let res = nonzero(&mut rng, n);
            let xtile = nonzero(&mut rng, t * d);
            let (rb, xtb) = (ctx.storage_init("r", &res), ctx.storage_init("xt", &xtile));
            let offset = 5;
            let shifted: Vec<u32> = (0..offset as u32).chain(want.iter().copied()).collect();
            let sbits = ctx.storage_init("bits", &shifted);
            let g = ctx.storage("g", (t * d * 4) as u64);
            let part = ctx.storage(
                "part",
                (gpu_masked_gradient::partial_len(n, d, t) * 4) as u64,
            );
            let gp = MaskedGradientParams {
                finish: 1,
                mu: 0.3,
                bits0: offset as u32,
                ..MaskedGradientParams::new(n, d, t, words, xs)
            };
            let b = gpu_masked_gradient::GradientBufs {
                x: &xb,
                x_is_data: true,
                res: &rb,
                bits: &sbits,
                xtile: &xtb,
                g: &g,
                state: &xtb,
                part: &part,
            };
            // Every entry: the tiled one of GPUs and the barrier-free ones of CPU adapters (the
            // subgroup form where the device has it) give the same bits; the tiled one's output.
            let lanes_sg = ctx
                .lane_subgroups
                .then_some(gpu_masked_gradient::Entry::LanesSubgroup);
            let every_entry = |gp: &MaskedGradientParams,
                               b: &gpu_masked_gradient::GradientBufs<'_>,
                               what: &str| {
                let entries: Vec<Vec<f32>> = [
                    gpu_masked_gradient::Entry::Tiled,
                    gpu_masked_gradient::Entry::Lanes,
                ]
                .into_iter()
                .chain(lanes_sg)
                .map(|entry| {
                    let mut enc = Recorder::new(&ctx);
                    gpu_masked_gradient::encode_with(&mut enc, gp, b, entry);
                    enc.read_one::<f32>(b.g, 0, t * d).unwrap()
                })
                .collect();
                let bits_of = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                for other in &entries[1..] {
                    assert_eq!(
                        bits_of(&entries[0]),
                        bits_of(other),
                        "masked_gradient {what} n={n} d={d} m={m}: the entries differ"
                    );
                }
                entries.into_iter().next().unwrap()
            };
            let got = every_entry(&gp, &b, "under the masks");
            let split_rows = gpu_masked_gradient::split_rows(n, d, t);
            let block = GradientBlock {
                x: &xdev,
                x_stride: xs as usize,
                x_row0: 0,
                rows: n,
                d,
                res: &res,
                r_row0: 0,
                res_stride: 0,
                bits: &want,
                tile: t,
                split_rows,
            };
            let twin: Vec<f64> = masked_gradient::twin(&block, None, &xtile, Some(0.3))
                .iter()
                .map(|&v| v as f64)
                .collect();
            // Same fma order as the twin; the tolerance only allows a driver that does not fuse.
            assert_close(
                &format!(
                    "masked_gradient n={n} d={d} m={m} ({} splits)",
                    n.div_ceil(split_rows)
                ),
                &got,
                &twin,
                1e-6,
                1.21 * n as f64,
            );

            // A residual per neuron (the vector model's output chain rule, masks not read):
            // every entry, the same bits, and the twin's sums.
            let per = nonzero(&mut rng, n * t);
            let pb = ctx.storage_init("r", &per);
            let gp = MaskedGradientParams {
                res_stride: n as u32,
                ..gp
            };
            let b = gpu_masked_gradient::GradientBufs { res: &pb, ..b };
            let got = every_entry(&gp, &b, "per-neuron residual");
            let block = GradientBlock {
                res: &per,
                res_stride: n,
                ..block
            };
            let twin: Vec<f64> = masked_gradient::twin(&block, None, &xtile, Some(0.3))
                .iter()
                .map(|&v| v as f64)
                .collect();
            assert_close(
                &format!("masked_gradient per-neuron residual n={n} d={d} m={m}"),
                &got,
                &twin,
                1e-6,
                1.21 * n as f64,
            );
        }
    }
}

/// `v`, or one zero when it is empty (a storage buffer cannot be empty).
fn pad4<T: Copy + Default>(v: &[T]) -> Vec<T> {
    if v.is_empty() {
        vec![T::default()]
    } else {
        v.to_vec()
    }
}

#[test]
fn support_kernels_and_reduce_match_twins() {
    let Some(ctx) = gpu() else { return };
    let mut rng = rng(31);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            let x = sparse(&mut rng, m * d, (m * d).div_ceil(2));
            let lay = Layout::new(&op, x.indices());
            let up = |v: &[u32]| ctx.storage_init("u32", v);
            let (cols, starts, run_of, bits) = (
                up(&lay.cols),
                up(&lay.run_start),
                up(&lay.run_of),
                up(&lay.bits),
            );
            let xdev = workspace::device_columns(op.data(), 0..n);
            let xs = workspace::x_stride(n) as u32;
            let xb = ctx.storage_init("x", &xdev);
            let rows = RowBlock {
                x_stride: xs as usize,
                ..RowBlock::all(&xdev, n)
            };
            let zb = ctx.storage_init("z", x.values());
            let out = ctx.storage("out", (n * 4) as u64);
            let runs = lay.run_start.len() as u32 - 1;
            let p = SupportForwardParams {
                rows: n as u32,
                x_stride: xs,
                x_row0: 0,
                words: lay.words as u32,
                runs,
                out_row0: 0,
                m_row0: 0,
                sub_y: 0,
            };
            let twin: Vec<f64> = support_forward::twin(&rows, &lay.view(), x.values())
                .iter()
                .map(|&v| v as f64)
                .collect();
            let scale = x.values().iter().map(|v| v.abs() as f64).sum::<f64>() * 1.1;
            // Both entries: 256 rows per workgroup (GPUs), four mask words per workgroup of 8 (CPU
            // adapters); the same sums.
            let mut entries = Vec::new();
            for (entry, rows_per_group) in [
                ("support_forward.main", 256),
                ("support_forward.lanes", 128),
            ] {
                let mut enc = Recorder::new(&ctx);
                enc.clear(&out, 0, (n * 4) as u64);
                enc.dispatch(
                    entry,
                    &p,
                    &[&xb, &cols, &starts, &zb, &bits, &out, &xb],
                    (n.div_ceil(rows_per_group) as u32, 1, 1),
                );
                let got = enc.read_one::<f32>(&out, 0, n).unwrap();
                assert_close(
                    &format!("{entry} n={n} d={d} m={m}"),
                    &got,
                    &twin,
                    1e-6,
                    scale,
                );
                entries.push(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            }
            assert_eq!(
                entries[0], entries[1],
                "support_forward n={n}: the entries differ"
            );

            let v = nonzero(&mut rng, n);
            let vb = ctx.storage_init("v", &v);
            let len = x.nnz();
            let adj = ctx.storage("adj", (len * 4) as u64);
            let p = SupportAdjointParams {
                rows: n as u32,
                x_stride: xs,
                x_row0: 0,
                words: lay.words as u32,
                len: len as u32,
                r_row0: 0,
                m_row0: 0,
                accumulate: 0,
            };
            let mut enc = Recorder::new(&ctx);
            enc.dispatch(
                "support_adjoint.main",
                &p,
                &[&xb, &cols, &run_of, &vb, &bits, &adj],
                (len as u32, 1, 1),
            );
            let got = enc.read_one::<f32>(&adj, 0, len).unwrap();
            let twin: Vec<f64> = support_adjoint::twin(&rows, &lay.view(), &v, 0)
                .iter()
                .map(|&v| v as f64)
                .collect();
            assert_close(
                &format!("support_adjoint n={n} d={d} m={m}"),
                &got,
                &twin,
                1e-6,
                1.21 * n as f64,
            );

            let (ab, bb) = (
                ctx.storage_init("a", &v),
                ctx.storage_init("b", &nonzero(&mut rng, n)),
            );
            let groups = n.div_ceil(64);
            let part = ctx.storage("part", (groups * 4) as u64);
            let rp = ReduceParams {
                len: n as u32,
                mode: 1,
                per_group: 64,
                mu: 0.7,
            };
            let mut enc = Recorder::new(&ctx);
            enc.dispatch(
                "reduce.partials",
                &rp,
                &[&ab, &bb, &part],
                (groups as u32, 1, 1),
            );
            let got = enc.read_one::<f32>(&part, 0, groups).unwrap();
            let bhost = Recorder::new(&ctx).read_one::<f32>(&bb, 0, n).unwrap();
            let twin: Vec<f64> = reduce::twin_partials(&v, Some(&bhost), 0.7, 64)
                .iter()
                .map(|&v| v as f64)
                .collect();
            assert_close(&format!("reduce n={n}"), &got, &twin, 1e-6, 4.0 * 64.0);
        }
    }
}

#[test]
fn topk_merge_matches_twin_and_running_set() {
    let Some(ctx) = gpu() else { return };
    let mut rng = rng(32);
    // (tiles, neurons per tile, d, keep): one entry, keep above the pool, ties, awkward sizes.
    for (tiles, per, d, keep) in [
        (1, 1, 1, 1),
        (3, 2, 5, 1),
        (2, 7, 13, 1000),
        (4, 9, 50, 37),
        (3, 10, 64, 600),
        (5, 3, 7, 20),
    ] {
        let len = per * d;
        let cap = keep;
        let nb = topk::blocks(cap, len);
        let bufs: Vec<_> = ["i0", "v0", "i1", "v1"]
            .iter()
            .map(|l| ctx.storage(l, (cap * 4) as u64))
            .collect();
        let ctl = ctx.storage("ctl", (topk::CTL_WORDS * 4) as u64);
        let blocks = ctx.storage("blocks", (nb * 16) as u64);
        let run = topk::Running {
            idx: [&bufs[0], &bufs[2]],
            val: [&bufs[1], &bufs[3]],
            ctl: &ctl,
            blocks: &blocks,
        };
        let neurons: Vec<u32> = (0..(tiles * per) as u32).map(|j| 3 * j + 1).collect();
        let nbuf = ctx.storage_init("neurons", &neurons);
        let mut twin: Vec<(u32, f32)> = Vec::new();
        let mut reference = TopS::new(keep);
        let mut rec = Recorder::new(&ctx);
        rec.clear(&ctl, 0, (topk::CTL_WORDS * 4) as u64);
        let mut cands = Vec::new();
        for t in 0..tiles {
            // Coarse values: many exact ties, some zeros.
            let cand: Vec<f32> = nonzero(&mut rng, len)
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    if k % 5 == 3 {
                        0.0
                    } else {
                        (v * 4.0).round() / 4.0
                    }
                })
                .collect();
            let tile_neurons = &neurons[t * per..(t + 1) * per];
            twin = cpu_topk::twin_merge(&twin, &cand, tile_neurons, d, keep);
            for (k, &v) in cand.iter().enumerate() {
                reference.push(tile_neurons[k / d] * d as u32 + (k % d) as u32, v);
            }
            cands.push(ctx.storage_init("cand", &cand));
            let cb = cands.last().unwrap();
            topk::merge(&mut rec, &run, cb, &nbuf, t * per, len, d, keep, t);
        }
        let o = tiles % 2;
        let bytes = rec
            .read(&[
                (&ctl, ((topk::COUNT + o) * 4) as u64, 4),
                (run.idx[o], 0, (keep * 4) as u64),
                (run.val[o], 0, (keep * 4) as u64),
            ])
            .unwrap();
        let count = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        let idx: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes[4..4 + count * 4]);
        let val: Vec<f32> =
            bytemuck::pod_collect_to_vec(&bytes[4 + keep * 4..4 + keep * 4 + count * 4]);
        let got: Vec<(u32, f32)> = idx.into_iter().zip(val).collect();
        assert_eq!(
            got, twin,
            "tiles {tiles} × {per} neurons, d {d}, keep {keep}: GPU vs twin"
        );
        let want = reference.finish(u32::MAX as u64);
        let want: Vec<(u32, f32)> = want
            .indices()
            .iter()
            .copied()
            .zip(want.values().iter().copied())
            .collect();
        assert_eq!(twin, want, "twin vs TopS, keep {keep}");
    }
}

#[test]
fn armijo_kernels_match_twin() {
    let Some(ctx) = gpu() else { return };
    let mut rng = rng(34);
    for n in [1usize, 63, 257, 5000, 70_001] {
        let r = nonzero(&mut rng, n);
        let q: Vec<f32> = nonzero(&mut rng, n).iter().map(|v| v * 0.01).collect();
        let r0 = nonzero(&mut rng, n);
        let groups = armijo::groups(n) as usize;
        let (rb, qb, r0b) = (
            ctx.storage_init("r", &r),
            ctx.storage_init("q", &q),
            ctx.storage_init("r0", &r0),
        );
        let part = ctx.storage("part", (armijo::MAX_GROUPS * armijo::TRIALS * 8) as u64);
        let state = ctx.storage_init("state", &[armijo::State::with_mu(0.75)]);
        // f = f0 = ‖r0‖², gg = ‖q‖² (any positive value does), one line search, the update.
        let mut rec = Recorder::new(&ctx);
        armijo::norm_into(&mut rec, &state, &part, &r0b, n, armijo::Finish::Start);
        armijo::norm_into(&mut rec, &state, &part, &qb, n, armijo::Finish::Gg);
        armijo::trials_and_decide(&mut rec, &state, &part, &rb, &qb, n);
        armijo::update(&mut rec, &state, &rb, &qb, &r0b, n);
        let bytes = rec
            .read(&[(&state, 0, armijo::STATE_BYTES), (&rb, 0, (n * 4) as u64)])
            .unwrap();
        let st: armijo::State =
            bytemuck::pod_read_unaligned(&bytes[..armijo::STATE_BYTES as usize]);
        let got_r: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes[armijo::STATE_BYTES as usize..]);

        let mut tw = cpu_armijo::State {
            mu: 0.75,
            ..Default::default()
        };
        cpu_armijo::finish(&mut tw, &cpu_armijo::norm(&r0, groups), groups, 0);
        cpu_armijo::finish(&mut tw, &cpu_armijo::norm(&q, groups), groups, 1);
        cpu_armijo::decide(&mut tw, &cpu_armijo::trials(&r, &q, 0.75, groups), groups);
        let mut want_r = r.clone();
        cpu_armijo::update(&tw, &mut want_r, &q, &r0);
        // The same operations in the same order: exact, but for fma contraction choices of the
        // driver; a few ulps of each sum.
        let close = |a: [f32; 2], b: [f32; 2]| {
            let (a, b) = (cpu_armijo::value(a), cpu_armijo::value(b));
            (a - b).abs() <= 1e-6 * b.abs().max(1e-30)
        };
        assert!(close(st.f0, tw.f0), "n={n}: f0 {:?} vs {:?}", st.f0, tw.f0);
        assert!(close(st.gg, tw.gg), "n={n}: gg {:?} vs {:?}", st.gg, tw.gg);
        assert!(close(st.f, tw.f), "n={n}: f {:?} vs {:?}", st.f, tw.f);
        assert_eq!(
            (st.action, st.trials, st.resets, st.accepts, st.mu),
            (tw.action, tw.trials, tw.resets, tw.accepts, tw.mu),
            "n={n}: decision"
        );
        let want: Vec<f64> = want_r.iter().map(|&v| v as f64).collect();
        assert_close(&format!("armijo update n={n}"), &got_r, &want, 1e-6, 1.0);
        // The twin against the f64 rule: the first accepted trial of ‖r − μ2⁻ʲq‖² ≤ f − 0.9μ2⁻ʲ‖q‖².
        let (f, gg) = (reduce::norm2(&r0), reduce::norm2(&q));
        let mut mu = 0.75f64;
        let mut tests = 0;
        let mut accepted = false;
        for _ in 0..cpu_armijo::TRIALS {
            tests += 1;
            if reduce::shifted_norm2(&r, &q, mu) <= f - 0.9 * mu * gg {
                accepted = true;
                break;
            }
            mu /= 2.0;
        }
        assert_eq!(
            (tw.trials as usize, tw.action == 1),
            (tests, accepted),
            "n={n}: twin vs rule"
        );
    }
}

#[test]
fn scatter_matches_host_layout() {
    let Some(ctx) = gpu() else { return };
    let mut rng = rng(35);
    for (m, d, nnz, pos0, tile) in [(1, 1, 1, 0, 1), (9, 7, 20, 3, 4), (40, 13, 100, 0, 40)] {
        let x = sparse(&mut rng, m * d, nnz);
        let pos: Vec<u32> = x.indices().iter().map(|c| c / d as u32).collect();
        let (ib, vb, pb) = (
            ctx.storage_init("idx", x.indices()),
            ctx.storage_init("val", x.values()),
            ctx.storage_init("pos", &pos),
        );
        let out = ctx.storage("out", (tile * d * 4) as u64);
        let mut rec = Recorder::new(&ctx);
        rec.clear(&out, 0, (tile * d * 4) as u64);
        gpu_masked_gradient::scatter(&mut rec, x.nnz(), d, pos0, tile, &ib, &vb, &pb, &out);
        let got = rec.read_one::<f32>(&out, 0, tile * d).unwrap();
        let dense = x.to_dense();
        let lo = (pos0 * d).min(dense.len());
        let hi = ((pos0 + tile) * d).min(dense.len());
        let mut want = dense[lo..hi].to_vec();
        want.resize(tile * d, 0.0);
        assert_eq!(got, want, "scatter m={m} d={d} pos0={pos0} tile={tile}");
    }
}

#[test]
fn engine_matches_cpu_engine_resident_and_streamed() {
    let Some(ctx) = gpu() else { return };
    let mut rng = rng(33);
    for &(n, d, m) in &[(130, 9, 7), (2500, 13, 11)] {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            // A budget far below the data forces 64-row blocks streamed from the host.
            for budget in [None, Some(4 * 64 * d as u64 * 4)] {
                let mut gpu = GpuBackend::new(ctx.clone(), budget);
                let mut cpu = CpuBackend::new();
                let x = sparse(&mut rng, m * d, (m * d) / 3);
                let r = nonzero(&mut rng, n);
                let keep = x.nnz() + 5;
                let (rg, rc) = (gpu.upload(&r).unwrap(), cpu.upload(&r).unwrap());
                let pg = gpu.gradient_phase(&op, &x, keep).unwrap();
                let pc = cpu.gradient_phase(&op, &x, keep).unwrap();
                // μ: f32 sums on the device against f64 on the host.
                assert!(
                    (pg.mu - pc.mu).abs() <= 1e-4 * pc.mu,
                    "n={n} budget={budget:?}: mu {} vs {}",
                    pg.mu,
                    pc.mu
                );
                let (sel_g, sel_c) = (&pg.z0, &pc.z0);
                assert_eq!(sel_g.nnz(), sel_c.nnz());
                let agree = sel_g
                    .indices()
                    .iter()
                    .filter(|c| sel_c.indices().binary_search(c).is_ok())
                    .count();
                // f32 sums in different orders may swap entries tied to ~1e-6 at the cut.
                assert!(
                    agree + 1 >= sel_c.nnz(),
                    "n={n} budget={budget:?}: {agree} of {} agree",
                    sel_c.nnz()
                );
                // The support phase from the same start on both engines.
                let sg = gpu.support_phase(&op, &pc.z0, pc.mu, 10).unwrap();
                let sc = cpu.support_phase(&op, &pc.z0, pc.mu, 10).unwrap();
                assert!(
                    (sg.f - sc.f).abs() <= 1e-4 * sc.f.max(1e-12),
                    "n={n} budget={budget:?}: f {} vs {}",
                    sg.f,
                    sc.f
                );
                assert_eq!(
                    (sg.trials, sg.resets),
                    (sc.trials, sc.resets),
                    "n={n}: line search"
                );
                let want: Vec<f64> = sc.z.iter().map(|&v| v as f64).collect();
                let scale = sc.z.iter().map(|v| v.abs() as f64).fold(1.0, f64::max);
                assert_close(&format!("support phase z n={n}"), &sg.z, &want, 1e-3, scale);
                gpu.prepare_support(&op, x.indices()).unwrap();
                cpu.prepare_support(&op, x.indices()).unwrap();
                let fg = gpu.forward(&op, x.values()).unwrap();
                let fc = cpu.forward(&op, x.values()).unwrap();
                let fg = gpu.download(&fg).unwrap();
                let want: Vec<f64> = fc.iter().map(|&v| v as f64).collect();
                let scale = x.values().iter().map(|v| v.abs() as f64).sum::<f64>() * 1.1;
                assert_close(
                    &format!("engine forward n={n} budget={budget:?}"),
                    &fg,
                    &want,
                    1e-5,
                    scale,
                );
                let ag = gpu.adjoint(&op, &rg).unwrap();
                let want: Vec<f64> = cpu
                    .adjoint(&op, &rc)
                    .unwrap()
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                assert_close(
                    &format!("engine adjoint n={n} budget={budget:?}"),
                    &ag,
                    &want,
                    1e-5,
                    1.21 * n as f64,
                );
                let ng = gpu.shifted_norm2(&rg, &rg, 0.5).unwrap();
                let nc = cpu.shifted_norm2(&rc, &rc, 0.5).unwrap();
                assert!((ng - nc).abs() <= 1e-5 * nc, "norm {ng} vs {nc}");
            }
        }
    }
}

#[test]
fn minibatch_solve_on_gpu_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let spec = PlantedSpec {
        n: 900,
        d: 10,
        m: 6,
        s: 18,
        seed: 2,
        teacher: Teacher::Relu,
    };
    let mut config = IhtConfig::new(18, 3);
    config.batch_size = Some(400); // 3 batches per epoch, the last one short
    config.seed = 2;
    let (_, rc, sc) = planted::run(&spec, &config, CpuBackend::new(), |_| {}).unwrap();
    let (_, rg, sg) = planted::run(&spec, &config, GpuBackend::new(ctx, None), |_| {}).unwrap();
    assert_eq!(rg.steps, 9);
    assert_eq!(rg.x.indices(), rc.x.indices(), "same support");
    assert!(
        (sg.psnr - sc.psnr).abs() < 0.5,
        "PSNR gpu {} cpu {}",
        sg.psnr,
        sc.psnr
    );
}

#[test]
fn planted_solve_on_gpu_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    for (teacher, mode) in [
        (Teacher::Convex, Mode::Convex),
        (Teacher::Relu, Mode::SequentialConvex),
    ] {
        let spec = PlantedSpec {
            n: 1500,
            d: 12,
            m: 8,
            s: 24,
            seed: 1,
            teacher,
        };
        let mut config = IhtConfig::new(24, 15);
        config.mode = mode;
        config.seed = 1;
        let (_, rc, sc) = planted::run(&spec, &config, CpuBackend::new(), |_| {}).unwrap();
        let gpu = GpuBackend::new(ctx.clone(), None);
        let (_, rg, sg) = planted::run(&spec, &config, gpu, |_| {}).unwrap();
        assert_eq!(rg.x.indices(), rc.x.indices(), "{teacher:?}: same support");
        let (pg, pc) = (sg.psnr.min(140.0), sc.psnr.min(140.0));
        assert!(
            (pg - pc).abs() < 0.5 || (pg > 100.0 && pc > 100.0),
            "{teacher:?}: PSNR gpu {pg} cpu {pc}"
        );
        assert!(ctx.peak_device_bytes() > 0);
    }
}

#[test]
fn vector_model_kernels_match_twins() {
    let Some(ctx) = gpu() else { return };
    let mut rng = rng(61);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            for (k, loss) in [
                (1, Loss::Mse),
                (3, Loss::CrossEntropy),
                (10, Loss::CrossEntropy),
            ] {
                let what = format!("n={n} d={d} m={m} k={k}");
                let b = vector_blocks(&mut rng, &op, k);
                let t = b.live.len();
                let words = n.div_ceil(32);
                let x = op.data().xt();
                let h: Vec<f32> = b.live.iter().flat_map(|&j| op.generator(j)).collect();
                let bits = relu_mask::twin(x, n, 0, n, d, &h, t);
                let l = TileLayout {
                    n,
                    tile: t,
                    k,
                    words,
                    bits: &bits,
                };
                let (xb, bb) = (ctx.storage_init("x", x), ctx.storage_init("bits", &bits));
                let (w1b, w2b) = (ctx.storage_init("w1", &b.w1), ctx.storage_init("w2", &b.w2));
                let base = VectorModelParams {
                    rows: n as u32,
                    d: d as u32,
                    tile: t as u32,
                    k: k as u32,
                    x_stride: n as u32,
                    x_row0: 0,
                    row0: 0,
                    n: n as u32,
                    words: words as u32,
                    accumulate: 0,
                    loss: 0,
                    _pad: 0,
                };
                // hidden, in two row blocks (the second starts at a multiple of 64 rows).
                let hq = ctx.storage("hq", (n * t * 4) as u64);
                let split = (n / 2 / 64) * 64;
                let mut enc = Recorder::new(&ctx);
                for rows in [0..split, split..n] {
                    if rows.is_empty() {
                        continue;
                    }
                    let p = VectorModelParams {
                        rows: rows.len() as u32,
                        x_row0: rows.start as u32,
                        row0: rows.start as u32,
                        ..base
                    };
                    let groups = (groups64(rows.len()), t.div_ceil(4) as u32, 1);
                    let bind = [(1, &xb), (2, &w1b), (3, &bb), (4, &hq)];
                    enc.dispatch("vector_model.hidden", &p, &bind.map(|b| b.1), groups);
                }
                let got = enc.read_one::<f32>(&hq, 0, n * t).unwrap();
                let mut want = vec![0.0f32; n * t];
                vector_model::hidden_twin(&l, x, n, 0, n, 0, d, &b.w1, &mut want);
                let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
                let scale = 1.0 + b.w1.iter().map(|v| v.abs() as f64).sum::<f64>();
                assert_close(&format!("hidden {what}"), &got, &f64s(&want), 1e-6, scale);

                // output, accumulating onto a random start.
                let h_in = nonzero(&mut rng, n * t);
                let start = nonzero(&mut rng, k * n);
                let (hb, out) = (
                    ctx.storage_init("h", &h_in),
                    ctx.storage_init("out", &start),
                );
                let p = VectorModelParams {
                    accumulate: 1,
                    ..base
                };
                let mut enc = Recorder::new(&ctx);
                let bind = [(2, &w2b), (4, &hb), (5, &out)];
                enc.dispatch(
                    "vector_model.output",
                    &p,
                    &bind.map(|b| b.1),
                    (groups64(n), 1, 1),
                );
                let got = enc.read_one::<f32>(&out, 0, k * n).unwrap();
                let mut want = start.clone();
                vector_model::output_twin(&l, &h_in, &b.w2, true, &mut want);
                assert_close(
                    &format!("output {what}"),
                    &got,
                    &f64s(&want),
                    1e-6,
                    1.0 + 3.0 * t as f64,
                );

                // residual, both losses, on logits of a few units.
                for lo in [Loss::Mse, loss] {
                    let yhat = nonzero(&mut rng, k * n);
                    let y = vector_targets(&mut rng, n, k, lo);
                    let yt: Vec<f32> = (0..k * n).map(|e| y[(e % n) * k + e / n]).collect();
                    let (ob, yb) = (ctx.storage_init("yhat", &yhat), ctx.storage_init("y", &yt));
                    let lb = ctx.storage("loss", (n * 4) as u64);
                    let p = VectorModelParams {
                        loss: if lo == Loss::Mse { 1 } else { 2 },
                        ..base
                    };
                    let mut enc = Recorder::new(&ctx);
                    let bind = [(5, &ob), (6, &yb), (7, &lb)];
                    enc.dispatch(
                        "vector_model.residual",
                        &p,
                        &bind.map(|b| b.1),
                        (groups64(n), 1, 1),
                    );
                    let got_r = enc.read_one::<f32>(&ob, 0, k * n).unwrap();
                    let got_l = Recorder::new(&ctx).read_one::<f32>(&lb, 0, n).unwrap();
                    let mut want_r = yhat.clone();
                    let want_l = vector_model::residual_twin(n, k, lo, &yt, &mut want_r);
                    // exp and ln are the driver's: a few ulps apart from the host's.
                    assert_close(
                        &format!("residual {what} {lo:?}"),
                        &got_r,
                        &f64s(&want_r),
                        1e-5,
                        1.0 / n as f64 + 1e-3,
                    );
                    assert_close(
                        &format!("loss {what} {lo:?}"),
                        &got_l,
                        &f64s(&want_l),
                        1e-5,
                        1.0 + k as f64 * 10.0,
                    );
                }

                // backprop.
                let r = nonzero(&mut rng, k * n);
                let rb = ctx.storage_init("r", &r);
                let q = ctx.storage("q", (n * t * 4) as u64);
                let mut enc = Recorder::new(&ctx);
                let bind = [(2, &w2b), (3, &bb), (4, &q), (5, &rb)];
                enc.dispatch(
                    "vector_model.backprop",
                    &base,
                    &bind.map(|b| b.1),
                    (groups64(n), 1, t as u32),
                );
                let got = enc.read_one::<f32>(&q, 0, n * t).unwrap();
                let mut want = vec![0.0f32; n * t];
                vector_model::backprop_twin(&l, &r, &b.w2, &mut want);
                assert_close(
                    &format!("backprop {what}"),
                    &got,
                    &f64s(&want),
                    1e-6,
                    1.0 + 3.0 * k as f64,
                );

                // masked_gradient with a per-neuron residual (the chain rule's G1), two blocks.
                let g = ctx.storage("g", (t * d * 4) as u64);
                // Held until the commands that use it are submitted: a buffer dropped earlier goes
                // back to the context's pool, where another test's thread may take it.
                let part = ctx.storage(
                    "part",
                    (gpu_masked_gradient::partial_len(n, d, t) * 4) as u64,
                );
                let mut enc = Recorder::new(&ctx);
                let blocks: Vec<_> = [0..split, split..n]
                    .into_iter()
                    .filter(|r| !r.is_empty())
                    .collect();
                for (bi, rows) in blocks.iter().enumerate() {
                    let gp = MaskedGradientParams {
                        x_row0: rows.start as u32,
                        r_row0: rows.start as u32,
                        accumulate: (bi > 0) as u32,
                        finish: (bi + 1 == blocks.len()) as u32,
                        mu: 0.3,
                        res_stride: n as u32,
                        ..MaskedGradientParams::new(rows.len(), d, t, words, n as u32)
                    };
                    let b = gpu_masked_gradient::GradientBufs {
                        x: &xb,
                        x_is_data: true,
                        res: &hb,
                        bits: &bb,
                        xtile: &w1b,
                        g: &g,
                        state: &w1b,
                        part: &part,
                    };
                    gpu_masked_gradient::encode(&mut enc, &gp, &b);
                }
                let got = enc.read_one::<f32>(&g, 0, t * d).unwrap();
                let mut acc: Option<Vec<f32>> = None;
                for (bi, rows) in blocks.iter().enumerate() {
                    let block = GradientBlock {
                        x,
                        x_stride: n,
                        x_row0: rows.start,
                        rows: rows.len(),
                        d,
                        res: &h_in,
                        r_row0: rows.start,
                        res_stride: n,
                        bits: &bits,
                        tile: t,
                        split_rows: gpu_masked_gradient::split_rows(rows.len(), d, t),
                    };
                    let last = bi + 1 == blocks.len();
                    acc = Some(masked_gradient::twin(
                        &block,
                        acc.as_deref(),
                        &b.w1,
                        last.then_some(0.3),
                    ));
                }
                let want = acc.unwrap();
                assert_close(
                    &format!("masked_gradient per-neuron {what}"),
                    &got,
                    &f64s(&want),
                    1e-6,
                    1.21 * n as f64,
                );
            }
        }
    }
}

#[test]
fn vector_engine_matches_twins_and_cpu_engine_resident_and_streamed() {
    let Some(ctx) = gpu() else { return };
    let mut rng = rng(62);
    for &(n, d, m) in &[(130, 9, 7), (2500, 13, 11)] {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            for (k, loss) in [(3, Loss::Mse), (10, Loss::CrossEntropy)] {
                let b = vector_blocks(&mut rng, &op, k);
                let at = vector_blocks(&mut rng, &op, k);
                let y = vector_targets(&mut rng, n, k, loss);
                let twin = vector_twin_step(&op, &y, k, loss, &b, 0.7);
                let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
                let scale = 1.0
                    + twin
                        .w1
                        .iter()
                        .chain(&twin.w2)
                        .fold(0.0f32, |a, v| a.max(v.abs())) as f64;
                // A tiny budget forces 64-row blocks and one-neuron tiles.
                for budget in [None, Some(4 * 64 * d as u64 * 4)] {
                    let what = format!("n={n} m={m} k={k} {loss:?} budget={budget:?}");
                    let mut gpu = GpuBackend::new(ctx.clone(), budget);
                    let got = gpu.vector_step(&op, &y, k, loss, &b, None, 0.7).unwrap();
                    assert!(
                        (got.loss - twin.loss).abs() <= 1e-5 * (1.0 + twin.loss),
                        "{what}: loss"
                    );
                    assert_close(&format!("{what} W1"), &got.w1, &f64s(&twin.w1), 1e-5, scale);
                    assert_close(&format!("{what} W2"), &got.w2, &f64s(&twin.w2), 1e-5, scale);
                    // Residual at `b`, gradients at other blocks: against the CPU engine.
                    let got = gpu
                        .vector_step(&op, &y, k, loss, &b, Some(&at), 0.7)
                        .unwrap();
                    let want = CpuBackend::new()
                        .vector_step(&op, &y, k, loss, &b, Some(&at), 0.7)
                        .unwrap();
                    let sc = 1.0
                        + want
                            .w1
                            .iter()
                            .chain(&want.w2)
                            .fold(0.0f32, |a, v| a.max(v.abs())) as f64;
                    assert_close(&format!("{what} W1 at"), &got.w1, &f64s(&want.w1), 1e-4, sc);
                    assert_close(&format!("{what} W2 at"), &got.w2, &f64s(&want.w2), 1e-4, sc);
                    let fg = gpu.vector_forward(&op, &b, k).unwrap();
                    let fc = CpuBackend::new().vector_forward(&op, &b, k).unwrap();
                    let sf = 1.0 + fc.iter().fold(0.0f32, |a, v| a.max(v.abs())) as f64;
                    assert_close(&format!("{what} forward"), &fg, &f64s(&fc), 1e-5, sf);
                }
            }
        }
    }
}

#[test]
fn vector_solve_on_gpu_matches_cpu() {
    let Some(ctx) = gpu() else { return };
    let k = 3;
    let (data, y) = super::vector::planted_vector(300, 6, k, 63);
    let config = VectorConfig {
        s: 40,
        epochs: 20,
        batch_size: None,
        seed: 2,
        mode: Mode::SequentialConvex,
        loss: Loss::Mse,
        select: Select::Magnitude,
        step: Some(0.5),
    };
    let mut losses = Vec::new();
    let mut preds = Vec::new();
    for gpu_engine in [false, true] {
        let mut l = Vec::new();
        let pred = if gpu_engine {
            let be = GpuBackend::new(ctx.clone(), None);
            let mut model = fit_vector_layers(
                be,
                data.clone(),
                y.clone(),
                k,
                8,
                &config,
                2,
                |_, _, loss| l.push(loss),
            )
            .unwrap();
            assert!(model.last.backend().peak_device_bytes() > 0);
            model.predict(data.clone()).unwrap()
        } else {
            let mut model = fit_vector_layers(
                CpuBackend::new(),
                data.clone(),
                y.clone(),
                k,
                8,
                &config,
                2,
                |_, _, loss| l.push(loss),
            )
            .unwrap();
            model.predict(data.clone()).unwrap()
        };
        losses.push(l);
        preds.push(pred);
    }
    assert_eq!(losses[0].len(), 2 * 20);
    // Each layer's fit lowers its loss (the second layer fits the targets from hidden units).
    for l in &losses {
        let (layer1, layer2) = l.split_at(20);
        assert!(
            layer1[19] < 0.8 * layer1[1],
            "layer 1: {} → {}",
            layer1[1],
            layer1[19]
        );
        assert!(
            layer2[19] < 0.8 * layer2[1],
            "layer 2: {} → {}",
            layer2[1],
            layer2[19]
        );
    }
    // Both engines follow the same path: the first layer's first loss agrees tightly, the last
    // ones within the drift of f32 sums in different orders.
    assert!((losses[0][0] - losses[1][0]).abs() <= 1e-5 * losses[0][0]);
    let (a, b) = (losses[0].last().unwrap(), losses[1].last().unwrap());
    assert!((a - b).abs() <= 0.05 * a, "final loss cpu {a} vs gpu {b}");
    let want: Vec<f64> = preds[0].iter().map(|&v| v as f64).collect();
    let scale = 1.0 + want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close("two-layer vector prediction", &preds[1], &want, 0.05, scale);
}

/// Workgroups of 64 for `len` invocations.
fn groups64(len: usize) -> u32 {
    len.div_ceil(64) as u32
}

#[test]
fn element_wise_kernels_cover_more_rows_than_one_grid_dimension() {
    // 65 535 workgroups of 64 cover 4 194 240 elements; one more row needs the 2-D layout.
    let Some(ctx) = gpu() else { return };
    let n = 65_535 * 64 + 77;
    let mut rng = rng(36);
    let a = nonzero(&mut rng, n);
    let b = nonzero(&mut rng, n);
    let (ab, bb) = (ctx.storage_init("a", &a), ctx.storage_init("b", &b));
    let p = ReduceParams {
        len: n as u32,
        mode: 0,
        per_group: 0,
        mu: 0.5,
    };
    let mut rec = Recorder::new(&ctx);
    relu_iht::gpu::reduce::axpy(&mut rec, &p, &ab, &bb);
    let got = rec.read_one::<f32>(&ab, 0, n).unwrap();
    let bad = (0..n)
        .filter(|&i| got[i] != a[i] - 0.5 * b[i])
        .take(3)
        .collect::<Vec<_>>();
    assert!(bad.is_empty(), "axpy differs at {bad:?} of {n}");
    // The same through the Armijo update (accepted step: a − μ b with μ from the state).
    let ab = ctx.storage_init("a", &a);
    let state = ctx.storage_init(
        "state",
        &[armijo::State {
            action: 1,
            ..armijo::State::with_mu(0.25)
        }],
    );
    let mut rec = Recorder::new(&ctx);
    armijo::update(&mut rec, &state, &ab, &bb, &bb, n);
    let got = rec.read_one::<f32>(&ab, 0, n).unwrap();
    assert!((0..n).all(|i| got[i] == (-0.25f32).mul_add(b[i], a[i])));
}

#[test]
fn a_rejected_dispatch_is_an_error_value_not_a_panic() {
    let Some(ctx) = gpu() else { return };
    let a = ctx.storage_init("a", &[1.0f32; 64]);
    let b = ctx.storage_init("b", &[1.0f32; 64]);
    let p = ReduceParams {
        len: 64,
        mode: 0,
        per_group: 0,
        mu: 1.0,
    };
    // More workgroups than the adapter allows in one dimension: the device rejects the dispatch.
    let too_many = ctx.limits.max_compute_workgroups_per_dimension + 1;
    let mut rec = Recorder::new(&ctx);
    rec.dispatch("reduce.axpy", &p, &[&a, &b], (too_many, 1, 1));
    let err = rec
        .submit()
        .expect_err("the device must reject the dispatch");
    assert!(
        err.to_string().contains("65535") || !err.to_string().is_empty(),
        "{err}"
    );
    // The context stays usable.
    let mut rec = Recorder::new(&ctx);
    relu_iht::gpu::reduce::axpy(&mut rec, &p, &a, &b);
    assert_eq!(rec.read_one::<f32>(&a, 0, 1).unwrap(), vec![0.0]);
}

#[test]
fn a_lost_device_is_an_error_value_not_a_panic() {
    // Its own device (the shared one must survive): destroyed, then asked to work.
    if gpu().is_none() {
        return;
    }
    let ctx = GpuContext::new(false).unwrap();
    let a = ctx.storage_init("a", &[1.0f32; 64]);
    let b = ctx.storage_init("b", &[2.0f32; 64]);
    ctx.device.destroy();
    let p = ReduceParams {
        len: 64,
        mode: 0,
        per_group: 0,
        mu: 1.0,
    };
    let mut rec = Recorder::new(&ctx);
    relu_iht::gpu::reduce::axpy(&mut rec, &p, &a, &b);
    let err = rec
        .read_one::<f32>(&a, 0, 64)
        .expect_err("a destroyed device cannot compute");
    assert!(!err.to_string().is_empty());
}

/// A device with these options on the adapter the GPU tests use; each option is taken exactly
/// where the adapter offers it (the portable kernels otherwise).
fn gpu_with(opts: relu_iht::gpu::context::GpuOptions) -> Option<Arc<GpuContext>> {
    gpu()?;
    let ctx = GpuContext::with_options(false, opts).expect("a second device on the same adapter");
    let name = &ctx.adapter.name;
    assert_eq!(ctx.x_f16, opts.x_f16 && ctx.adapter.shader_f16, "{name}");
    assert_eq!(
        ctx.subgroups,
        opts.subgroups && ctx.adapter.subgroups,
        "{name}"
    );
    Some(Arc::new(ctx))
}

/// A device that stores X in f16 (`--gpu-f16`).
fn gpu_f16() -> Option<Arc<GpuContext>> {
    gpu_with(relu_iht::gpu::context::GpuOptions {
        x_f16: true,
        subgroups: false,
    })
}

/// Six steps of the sequential-convex solve (random masks, then `h = w`: the dense and sparse
/// mask kernels, the gradient pass, the support products), with a device budget.
fn six_steps(ctx: &Arc<GpuContext>, data: &Arc<Data>, budget: Option<u64>) -> SparseVec {
    let op = Operator::new(data.clone(), 9, Generators::Random { seed: 2 }).unwrap();
    let be = GpuBackend::new(ctx.clone(), budget);
    let mut solver = relu_iht::Iht::new(be, op, relu_iht::IhtConfig::new(20, 6)).unwrap();
    for _ in 0..6 {
        solver.step().unwrap();
    }
    solver.x().clone()
}

/// X stored in f16 changes nothing but X's values: on data whose X is exactly representable in
/// f16 the f16-storage kernels give the f32 kernels' bits, and on any data the f16 engine gives
/// the f32 engine's bits on X rounded to f16 (so its CPU twin is the f32 twin on rounded X).
/// Awkward shapes: an odd n (the f16 upload is padded), and a budget that streams X by blocks of
/// the smallest size, 64 rows, in both (elsewhere f16 blocks are larger, which moves partial sums
/// across blocks and so the last bits).
#[test]
fn f16_storage_of_x_is_the_f32_engine_on_x_rounded_to_f16() {
    let (Some(ctx32), Some(ctx16)) = (gpu(), gpu_f16()) else {
        return;
    };
    if !ctx16.x_f16 {
        eprintln!("the adapter has no f16 in shaders: X stays in f32 (tested everywhere else)");
        return;
    }
    let mut rng = rng(77);
    let round = relu_iht::gpu::shaders::round_to_f16;
    let bits = |x: &SparseVec| -> (Vec<u32>, Vec<u32>) {
        (
            x.indices().to_vec(),
            x.values().iter().map(|v| v.to_bits()).collect(),
        )
    };
    for &(n, d, budget) in &[(1201usize, 7usize, None), (3001, 130, Some(64u64 << 10))] {
        let raw = data(&mut rng, n, d);
        let xt: Vec<f32> = (0..d)
            .flat_map(|i| raw.column(i).to_vec())
            .map(round)
            .collect();
        let rounded = Arc::new(Data::from_columns(n, d, xt, raw.y().to_vec()).unwrap());
        let want = bits(&six_steps(&ctx32, &rounded, budget));
        assert!(want.0.len() > 5, "n={n}: the solve itself works");
        assert_eq!(
            bits(&six_steps(&ctx16, &rounded, budget)),
            want,
            "n={n}: f16-exact X"
        );
        assert_eq!(
            bits(&six_steps(&ctx16, &raw, budget)),
            want,
            "n={n}: X rounded on upload"
        );
        // The vector model's forward pass reads X through the same accessor.
        let op = Operator::new(rounded.clone(), 4, Generators::Random { seed: 3 }).unwrap();
        let b = vector_blocks(&mut rng, &op, 3);
        let f32_forward = GpuBackend::new(ctx32.clone(), budget).vector_forward(&op, &b, 3);
        let op16 = op.with_data(raw.clone());
        let f16_forward = GpuBackend::new(ctx16.clone(), budget).vector_forward(&op16, &b, 3);
        let fbits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            fbits(f16_forward.unwrap()),
            fbits(f32_forward.unwrap()),
            "n={n}: vector forward"
        );
        // And its step: the input layer's gradient reads X (f16), the output layer's the hidden
        // values bound in X's place (f32 kernels).
        let y = nonzero(&mut rng, n * 3);
        let step = |ctx: &Arc<GpuContext>, op: &Operator| {
            let s = GpuBackend::new(ctx.clone(), budget)
                .vector_step(op, &y, 3, Loss::Mse, &b, None, 0.7)
                .unwrap();
            (fbits(s.w1), fbits(s.w2), s.loss.to_bits())
        };
        assert_eq!(step(&ctx16, &op16), step(&ctx32, &op), "n={n}: vector step");
    }
}

/// A device whose workgroup sums use subgroup operations (`--gpu-subgroups`).
fn gpu_subgroups() -> Option<Arc<GpuContext>> {
    gpu_with(relu_iht::gpu::context::GpuOptions {
        x_f16: false,
        subgroups: true,
    })
}

/// Subgroup sums (the norms and the support adjoint) agree with the CPU twins to rounding, give
/// the same bits from run to run, and leave the solve's support unchanged.
#[test]
fn subgroup_sums_match_the_twins_and_the_tree() {
    let (Some(tree), Some(sg)) = (gpu(), gpu_subgroups()) else {
        return;
    };
    if !sg.subgroups {
        eprintln!(
            "the adapter has no subgroup operations: the tree stays (tested everywhere else)"
        );
        return;
    }
    let mut rng = rng(78);
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    for &(n, d, m) in &[(1201usize, 7usize, 9usize), (70, 3, 5), (4099, 11, 4)] {
        let data = data(&mut rng, n, d);
        let op = Operator::new(data.clone(), m, Generators::Random { seed: 4 }).unwrap();
        let u = sparse(&mut rng, m * d, (m * d).div_ceil(3));
        let v = nonzero(&mut rng, n);
        let mut be = GpuBackend::new(sg.clone(), None);
        // The norm against the CPU's f64 sum.
        let vb = be.upload(&v).unwrap();
        let want = reduce::norm2(&v);
        let got = be.norm2(&vb).unwrap();
        assert!(
            (got - want).abs() <= 1e-6 * want,
            "n={n}: ‖v‖² {got} vs {want}"
        );
        // The adjoint against the CPU engine's.
        be.prepare_support(&op, u.indices()).unwrap();
        let got = be.adjoint(&op, &vb).unwrap();
        let mut cpu = CpuBackend::new();
        cpu.prepare_support(&op, u.indices()).unwrap();
        let want = cpu.adjoint(&op, &v).unwrap();
        let scale = want.iter().fold(1.0f32, |a, x| a.max(x.abs())) as f64;
        assert_close(&format!("n={n} adjoint"), &got, &f64s(&want), 1e-5, scale);
        let again = be.adjoint(&op, &vb).unwrap();
        assert_eq!(got, again, "n={n}: the same bits from run to run");
        // A whole solve: the same support as with the tree.
        if n > 1000 {
            let a = six_steps(&tree, &data, None);
            let b = six_steps(&sg, &data, None);
            assert_eq!(a.indices(), b.indices(), "n={n}: support");
            let scale = a.values().iter().fold(1.0f32, |s, x| s.max(x.abs())) as f64;
            assert_close(
                &format!("n={n} weights"),
                b.values(),
                &f64s(a.values()),
                1e-4,
                scale,
            );
        }
    }
}

/// The photo defaults (the high band of frequencies; the concentrated, signed run; tail averaging
/// with minibatches) on the bundled photo, downscaled, give the same PSNR on the GPU engine as on
/// the CPU engine within 0.5 dB: full batch and in batches.
#[test]
fn photo_defaults_on_gpu_match_cpu() {
    if gpu().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("relu-iht-gpu-photo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("o.png");
    let run = |backend: &str, extra: &[&str]| {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_relu-iht"))
            .args(["inr", "--max-side", "24", "--m", "40", "--s", "600"])
            .args([
                "--backend",
                backend,
                "--json",
                "-q",
                "--out",
                out.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{backend} {extra:?}: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        v
    };
    for extra in [
        &["--steps", "30"][..],
        &["--batch-size", "200", "--epochs", "3"][..],
    ] {
        let (g, c) = (run("gpu", extra), run("cpu", extra));
        assert!(g["backend"].as_str().unwrap().contains("gpu"), "{g}");
        assert!(
            c["options"]["concentrate"].is_object(),
            "the concentration ran: {c}"
        );
        let share = c["high_share"].as_f64().unwrap_or(0.0);
        assert!((share - 0.3).abs() < 1e-6, "the high band is on: {c}");
        let (pg, pc) = (g["psnr"].as_f64().unwrap(), c["psnr"].as_f64().unwrap());
        assert!((pg - pc).abs() < 0.5, "{extra:?}: PSNR gpu {pg} cpu {pc}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
