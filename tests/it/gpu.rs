//! The WebGPU engine: each kernel against its CPU twin on random non-zero inputs of awkward
//! shapes, the engine against the CPU engine, streaming under a small memory budget, and a whole
//! planted solve. With `RELU_IHT_REQUIRE_GPU=1` (CI) a missing adapter fails these tests; without
//! it they print why they skip.

use super::common::*;
use super::twins::{vector_blocks, vector_targets, vector_twin_step, Layout};
use relu_iht::cpu::masked_gradient::{self, GradientBlock};
use relu_iht::cpu::support_forward::RowBlock;
use relu_iht::cpu::vector_model::{self, TileLayout};
use relu_iht::cpu::{reduce, relu_mask, support_adjoint, support_forward, topk, CpuBackend};
use relu_iht::gpu::kernels::*;
use relu_iht::gpu::{GpuBackend, GpuContext};
use relu_iht::problem::model::{Loss, Select};
use relu_iht::problem::operator::Mode;
use relu_iht::solver::depth::fit_vector_layers;
use relu_iht::solver::scalar::IhtConfig;
use relu_iht::solver::vector::VectorConfig;
use relu_iht::tasks::planted::{self, PlantedSpec, Teacher};
use relu_iht::Backend;
use std::sync::{Arc, OnceLock};

/// The one device of this test binary (pipelines compile once), or `None` with a printed reason.
fn gpu() -> Option<Arc<GpuContext>> {
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

#[test]
fn relu_mask_and_masked_gradient_match_twins() {
    let Some(ctx) = gpu() else { return };
    let mut rng = rng(30);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            let neurons = op.live_neurons();
            let t = neurons.len();
            let h: Vec<f32> = neurons.iter().flat_map(|&j| op.generator(j)).collect();
            let words = n.div_ceil(32);
            let xb = ctx.storage_init("x", op.data().xt());
            let hb = ctx.storage_init("h", &h);
            let bits = ctx.storage("bits", (t * words * 4) as u64);
            let p = ReluMaskParams {
                rows: n as u32,
                d: d as u32,
                tile: t as u32,
                words: words as u32,
                x_stride: n as u32,
                x_row0: 0,
                out_stride: words as u32,
                out_word0: 0,
            };
            let mut enc = ctx.encoder();
            ctx.dispatch(
                &mut enc,
                &ctx.kernels.relu_mask,
                &p,
                &[(1, &xb), (2, &hb), (3, &bits)],
                (groups64(n), t.div_ceil(4) as u32, 1),
            );
            let got = ctx.read::<u32>(Some(enc), &bits, 0, t * words).unwrap();
            let want = relu_mask::twin(op.data().xt(), n, 0, n, d, &h, t);
            assert_eq!(
                got, want,
                "relu_mask n={n} d={d} m={m}: masks must match exactly"
            );

            let res = nonzero(&mut rng, n);
            let xtile = nonzero(&mut rng, t * d);
            let (rb, xtb) = (ctx.storage_init("r", &res), ctx.storage_init("xt", &xtile));
            let g = ctx.storage("g", (t * d * 4) as u64);
            let gp = MaskedGradientParams {
                rows: n as u32,
                d: d as u32,
                tile: t as u32,
                words: words as u32,
                x_stride: n as u32,
                x_row0: 0,
                r_row0: 0,
                res_stride: 0,
                accumulate: 0,
                finish: 1,
                mu: 0.3,
                _pad: 0,
            };
            let mut enc = ctx.encoder();
            let groups = (d.div_ceil(64) as u32, t.div_ceil(64) as u32, 1);
            ctx.dispatch(
                &mut enc,
                &ctx.kernels.masked_gradient,
                &gp,
                &[(1, &xb), (2, &rb), (3, &bits), (4, &xtb), (5, &g)],
                groups,
            );
            let got = ctx.read::<f32>(Some(enc), &g, 0, t * d).unwrap();
            let block = GradientBlock {
                x: op.data().xt(),
                x_stride: n,
                x_row0: 0,
                rows: n,
                d,
                res: &res,
                r_row0: 0,
                res_stride: 0,
                bits: &want,
                tile: t,
            };
            let twin: Vec<f64> = masked_gradient::twin(&block, None, &xtile, Some(0.3))
                .iter()
                .map(|&v| v as f64)
                .collect();
            // Same fma order as the twin; the tolerance only allows a driver that does not fuse.
            assert_close(
                &format!("masked_gradient n={n} d={d} m={m}"),
                &got,
                &twin,
                1e-6,
                1.21 * n as f64,
            );
        }
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
            let xb = ctx.storage_init("x", op.data().xt());
            let zb = ctx.storage_init("z", x.values());
            let out = ctx.storage("out", (n * 4) as u64);
            let runs = lay.run_start.len() as u32 - 1;
            let p = SupportForwardParams {
                rows: n as u32,
                x_stride: n as u32,
                x_row0: 0,
                words: lay.words as u32,
                runs,
                out_row0: 0,
                m_row0: 0,
                _pad: 0,
            };
            let mut enc = ctx.encoder();
            ctx.dispatch(
                &mut enc,
                &ctx.kernels.support_forward,
                &p,
                &[
                    (1, &xb),
                    (2, &cols),
                    (3, &starts),
                    (4, &zb),
                    (5, &bits),
                    (6, &out),
                ],
                (groups64(n), 1, 1),
            );
            let got = ctx.read::<f32>(Some(enc), &out, 0, n).unwrap();
            let twin: Vec<f64> =
                support_forward::twin(&RowBlock::all(op.data().xt(), n), &lay.view(), x.values())
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
            let scale = x.values().iter().map(|v| v.abs() as f64).sum::<f64>() * 1.1;
            assert_close(
                &format!("support_forward n={n} d={d} m={m}"),
                &got,
                &twin,
                1e-6,
                scale,
            );

            let v = nonzero(&mut rng, n);
            let vb = ctx.storage_init("v", &v);
            let len = x.nnz();
            let adj = ctx.storage("adj", (len * 4) as u64);
            let p = SupportAdjointParams {
                rows: n as u32,
                x_stride: n as u32,
                x_row0: 0,
                words: lay.words as u32,
                len: len as u32,
                r_row0: 0,
                m_row0: 0,
                accumulate: 0,
            };
            let mut enc = ctx.encoder();
            ctx.dispatch(
                &mut enc,
                &ctx.kernels.support_adjoint,
                &p,
                &[
                    (1, &xb),
                    (2, &cols),
                    (3, &run_of),
                    (4, &vb),
                    (5, &bits),
                    (6, &adj),
                ],
                (len as u32, 1, 1),
            );
            let got = ctx.read::<f32>(Some(enc), &adj, 0, len).unwrap();
            let twin: Vec<f64> =
                support_adjoint::twin(&RowBlock::all(op.data().xt(), n), &lay.view(), &v, 0)
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
            let mut enc = ctx.encoder();
            ctx.dispatch(
                &mut enc,
                &ctx.kernels.reduce_partials,
                &rp,
                &[(1, &ab), (2, &bb), (3, &part)],
                (groups as u32, 1, 1),
            );
            let got = ctx.read::<f32>(Some(enc), &part, 0, groups).unwrap();
            let bhost = ctx.read::<f32>(None, &bb, 0, n).unwrap();
            let twin: Vec<f64> = reduce::twin_partials(&v, Some(&bhost), 0.7, 64)
                .iter()
                .map(|&v| v as f64)
                .collect();
            assert_close(&format!("reduce n={n}"), &got, &twin, 1e-6, 4.0 * 64.0);
        }
    }
}

#[test]
fn topk_matches_twin() {
    let Some(ctx) = gpu() else { return };
    let mut rng = rng(32);
    for (len, d, keep, floor_at) in [
        (1, 1, 1, None),
        (100, 10, 1, None),
        (1000, 7, 1000, None),
        (5000, 50, 37, Some(10)),
        (640, 64, 600, None),
    ] {
        let cand: Vec<f32> = nonzero(&mut rng, len)
            .iter()
            .map(|v| (v * 8.0).round() / 8.0)
            .collect();
        let neurons: Vec<u32> = (0..len.div_ceil(d) as u32).map(|j| 3 * j + 1).collect();
        let floor = floor_at.map_or(0, |k| topk::key(cand[k]));
        let cb = ctx.storage_init("cand", &cand);
        let hist = ctx.storage_init("hist", &[0u32; 4098]);
        let (oi, ov) = (
            ctx.storage("idx", (len * 4) as u64),
            ctx.storage("val", (len * 4) as u64),
        );
        let nb = ctx.storage_init("neurons", &neurons);
        let p = TopkParams {
            len: len as u32,
            keep: keep as u32,
            floor,
            d: d as u32,
        };
        let mut enc = ctx.encoder();
        ctx.dispatch(
            &mut enc,
            &ctx.kernels.topk_histogram,
            &p,
            &[(1, &cb), (2, &hist)],
            (groups64(len), 1, 1),
        );
        ctx.dispatch(
            &mut enc,
            &ctx.kernels.topk_threshold,
            &p,
            &[(2, &hist)],
            (1, 1, 1),
        );
        ctx.dispatch(
            &mut enc,
            &ctx.kernels.topk_compact,
            &p,
            &[(1, &cb), (2, &hist), (3, &oi), (4, &ov), (5, &nb)],
            (groups64(len), 1, 1),
        );
        let h = ctx.read::<u32>(Some(enc), &hist, 0, 4098).unwrap();
        assert_eq!(
            &h[..4096],
            topk::histogram(&cand, floor).as_slice(),
            "histogram len {len}"
        );
        let thr = topk::threshold(&h[..4096], keep as u32, floor);
        assert_eq!(h[4096], thr, "threshold len {len}");
        let count = h[4097] as usize;
        let idx = ctx.read::<u32>(None, &oi, 0, count).unwrap();
        let val = ctx.read::<f32>(None, &ov, 0, count).unwrap();
        let mut got: Vec<(u32, u32)> = idx
            .into_iter()
            .zip(val)
            .map(|(c, v)| (c, v.to_bits()))
            .collect();
        got.sort_unstable();
        let mut want: Vec<(u32, u32)> = topk::compact(&cand, thr, &neurons, d)
            .into_iter()
            .map(|(c, v)| (c, v.to_bits()))
            .collect();
        want.sort_unstable();
        assert_eq!(
            got, want,
            "survivors len {len} keep {keep} (compared as sets)"
        );
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
                let sel_g = gpu.gradient_topk(&op, &x, &rg, 0.25, keep).unwrap();
                let sel_c = cpu.gradient_topk(&op, &x, &rc, 0.25, keep).unwrap();
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
                let mut enc = ctx.encoder();
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
                    ctx.dispatch(&mut enc, &ctx.kernels.vector_hidden, &p, &bind, groups);
                }
                let got = ctx.read::<f32>(Some(enc), &hq, 0, n * t).unwrap();
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
                let mut enc = ctx.encoder();
                let bind = [(2, &w2b), (4, &hb), (5, &out)];
                ctx.dispatch(
                    &mut enc,
                    &ctx.kernels.vector_output,
                    &p,
                    &bind,
                    (groups64(n), 1, 1),
                );
                let got = ctx.read::<f32>(Some(enc), &out, 0, k * n).unwrap();
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
                    let mut enc = ctx.encoder();
                    let bind = [(5, &ob), (6, &yb), (7, &lb)];
                    ctx.dispatch(
                        &mut enc,
                        &ctx.kernels.vector_residual,
                        &p,
                        &bind,
                        (groups64(n), 1, 1),
                    );
                    let got_r = ctx.read::<f32>(Some(enc), &ob, 0, k * n).unwrap();
                    let got_l = ctx.read::<f32>(None, &lb, 0, n).unwrap();
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
                let mut enc = ctx.encoder();
                let bind = [(2, &w2b), (3, &bb), (4, &q), (5, &rb)];
                ctx.dispatch(
                    &mut enc,
                    &ctx.kernels.vector_backprop,
                    &base,
                    &bind,
                    (groups64(n), t as u32, 1),
                );
                let got = ctx.read::<f32>(Some(enc), &q, 0, n * t).unwrap();
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
                let mut enc = ctx.encoder();
                let blocks: Vec<_> = [0..split, split..n]
                    .into_iter()
                    .filter(|r| !r.is_empty())
                    .collect();
                for (bi, rows) in blocks.iter().enumerate() {
                    let gp = MaskedGradientParams {
                        rows: rows.len() as u32,
                        d: d as u32,
                        tile: t as u32,
                        words: words as u32,
                        x_stride: n as u32,
                        x_row0: rows.start as u32,
                        r_row0: rows.start as u32,
                        accumulate: (bi > 0) as u32,
                        finish: (bi + 1 == blocks.len()) as u32,
                        mu: 0.3,
                        res_stride: n as u32,
                        _pad: 0,
                    };
                    let groups = (d.div_ceil(64) as u32, t.div_ceil(64) as u32, 1);
                    let bind = [(1, &xb), (2, &hb), (3, &bb), (4, &w1b), (5, &g)];
                    ctx.dispatch(&mut enc, &ctx.kernels.masked_gradient, &gp, &bind, groups);
                }
                let got = ctx.read::<f32>(Some(enc), &g, 0, t * d).unwrap();
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
