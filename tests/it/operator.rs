//! The sensing operator: support products against the dense formula, the adjoint dot test,
//! masks against the definition (strict `>`), and the generator schedule's building blocks.

use super::common::*;
use relu_iht::backend::SupportOps;
use relu_iht::cpu::relu_mask::{bit, Masks};
use relu_iht::cpu::CpuBackend;
use relu_iht::problem::data::Data;
use relu_iht::problem::operator::{Generators, Operator, Support};
use std::sync::Arc;

#[test]
fn support_products_match_dense_formula() {
    let mut rng = rng(1);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            for nnz in [1, (m * d).div_ceil(2), m * d] {
                let x = sparse(&mut rng, m * d, nnz);
                let mut be = CpuBackend::new();
                be.prepare_support(&op, x.indices()).unwrap();
                let got = be.forward(&op, x.values()).unwrap();
                let want = op.dense_forward(&x.to_dense());
                // f32 products of ≤ |T| ≤ 143 terms of size ≤ 1.21 against f64 sums: a relative
                // bound of 1e-5 on the term scale leaves ~100 ulps of headroom.
                let scale = x.values().iter().map(|v| v.abs() as f64).sum::<f64>() * 1.1;
                assert_close(
                    &format!("A_T z n={n} d={d} m={m}"),
                    &got,
                    &want,
                    1e-5,
                    scale,
                );

                let v = nonzero(&mut rng, n);
                let got = be.adjoint(&op, &v).unwrap();
                let dense = op.dense_adjoint(&v);
                let want: Vec<f64> = x.indices().iter().map(|&c| dense[c as usize]).collect();
                assert_close(
                    &format!("A_Tᵀ v n={n} d={d} m={m}"),
                    &got,
                    &want,
                    1e-5,
                    1.21 * n as f64,
                );
            }
        }
    }
}

#[test]
fn host_model_output_matches_dense_formula() {
    // `Operator::apply_sparse` (on the host, no engine) against the dense formula, with random
    // generators, other weights as generators, and the sequential-convex case h = x.
    let mut rng = rng(7);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        let x = sparse(&mut rng, m * d, (m * d).div_ceil(2));
        let mut ops = operators(&mut rng, data.clone(), m);
        ops.push(Operator::new(data, m, Generators::Weights(x.clone())).unwrap());
        let wrong = relu_iht::SparseVec::zeros((m * d + 1) as u64);
        for op in ops {
            assert!(matches!(
                op.apply_sparse(&wrong),
                Err(relu_iht::Error::ShapeMismatch { .. })
            ));
            let got = op.apply_sparse(&x).unwrap();
            let want = op.dense_forward(&x.to_dense());
            // f32 column sums of ≤ d terms of size ≤ 1.21 against f64 sums, as above.
            let scale = x.values().iter().map(|v| v.abs() as f64).sum::<f64>() * 1.1;
            assert_close(
                &format!("A x on the host n={n} d={d} m={m}"),
                &got,
                &want,
                1e-5,
                scale,
            );
        }
    }
}

#[test]
fn dot_test_blocked_and_unblocked() {
    // ⟨A u, v⟩ = ⟨u, Aᵀ v⟩, through the chunked support products (blocked) and the dense
    // formula (unblocked), on every shape and both generator modes.
    let mut rng = rng(2);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            let u = sparse(&mut rng, m * d, m * d);
            let v = nonzero(&mut rng, n);
            let mut be = CpuBackend::new();
            be.prepare_support(&op, u.indices()).unwrap();
            let au = be.forward(&op, u.values()).unwrap();
            let atv = be.adjoint(&op, &v).unwrap();
            let lhs: f64 = au.iter().zip(&v).map(|(&a, &b)| a as f64 * b as f64).sum();
            let rhs: f64 = atv
                .iter()
                .zip(u.values())
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            let dense_u = op.dense_forward(&u.to_dense());
            let lhs_dense: f64 = dense_u.iter().zip(&v).map(|(&a, &b)| a * b as f64).sum();
            let dense_v = op.dense_adjoint(&v);
            let rhs_dense: f64 = dense_v
                .iter()
                .zip(u.to_dense())
                .map(|(&a, b)| a * b as f64)
                .sum();
            let scale = (n * m * d) as f64 * 1.21 * 1.1;
            // Blocked f32 products against exact sums: relative 1e-6 of the total term scale.
            for (name, got, want) in [
                ("blocked ⟨Au,v⟩ vs ⟨u,Aᵀv⟩", lhs, rhs),
                ("unblocked ⟨Au,v⟩ vs ⟨u,Aᵀv⟩", lhs_dense, rhs_dense),
                ("blocked vs unblocked", lhs, lhs_dense),
            ] {
                let diff = (got - want).abs();
                assert!(
                    diff <= 1e-6 * scale,
                    "{name} (n={n} d={d} m={m}): actual {got}, expected {want}, difference {diff:e}, tolerance {:e}",
                    1e-6 * scale
                );
            }
        }
    }
}

#[test]
fn masks_follow_strict_definition() {
    let mut rng = rng(3);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            let all: Vec<u32> = (0..(m * d) as u32).collect();
            let support = Support::new(&all, d);
            let neurons: Vec<u32> = support.runs.iter().map(|r| r.0).collect();
            let masks = Masks::compute(&op, &neurons);
            // Reusing half of the bits from an earlier computation gives the same bits.
            let half: Vec<u32> = neurons.iter().copied().step_by(2).collect();
            let reused = Masks::update(&op, &neurons, &Masks::compute(&op, &half), &half);
            assert_eq!(
                reused.bits, masks.bits,
                "n={n} d={d} m={m}: reused masks differ"
            );
            for (k, &(j, _, _)) in support.runs.iter().enumerate() {
                // The very bits of the pre-activations the gradient pass forms and packs.
                let mut z = vec![0.0f32; n];
                op.preactivation(j, 0, &mut z);
                let mut packed = vec![0u64; n.div_ceil(64)];
                relu_iht::cpu::relu_mask::pack(&z, &mut packed);
                assert_eq!(masks.run(k), &packed[..], "n={n} d={d} m={m}: neuron {j}");
                let h = op.generator(j);
                for r in 0..n {
                    let z: f64 = (0..d)
                        .map(|i| op.data().at(r, i) as f64 * h[i] as f64)
                        .sum();
                    let scale: f64 = (0..d)
                        .map(|i| (op.data().at(r, i) * h[i]).abs() as f64)
                        .sum();
                    // Rows whose pre-activation is within f32 rounding of zero may go either way.
                    if z.abs() > 1e-5 * scale {
                        assert_eq!(bit(masks.run(k), r), z > 0.0, "neuron {j} row {r}: z = {z}");
                    }
                }
            }
        }
    }
    // Strictness: a zero generator (h = w with no weights on the neuron) masks every row off,
    // and a zero row is off for every neuron.
    let data = Arc::new(Data::from_rows(2, 2, &[0.0, 0.0, 1.0, 1.0], vec![0.0, 0.0]).unwrap());
    let w = relu_iht::SparseVec::from_pairs(4, vec![(0, 1.0), (1, 1.0)]).unwrap();
    let op = Operator::new(data, 2, Generators::Weights(w)).unwrap();
    let masks = Masks::compute(
        &op,
        &Support::new(&[0, 1, 2, 3], 2)
            .runs
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
    );
    assert!(
        !bit(masks.run(0), 0),
        "zero row must be inactive (strict >)"
    );
    assert!(bit(masks.run(0), 1));
    assert!(
        !bit(masks.run(1), 0) && !bit(masks.run(1), 1),
        "zero h must give a zero block"
    );
}

#[test]
fn padded_columns_hold_the_same_data() {
    use relu_iht::problem::data::column_stride;
    let mut rng = rng(3);
    for (n, d) in [(256, 3), (512, 1), (300, 4), (1, 2)] {
        let rows = nonzero(&mut rng, n * d);
        let y = nonzero(&mut rng, n);
        let data = Data::from_rows(n, d, &rows, y.clone()).unwrap();
        let ld = column_stride(n);
        assert_eq!(data.ld(), ld, "n={n}");
        assert_eq!(
            ld > n,
            n % 256 == 0,
            "n={n}: only multiples of 256 are padded"
        );
        assert_eq!(data.xt().len(), ld * d);
        for i in 0..d {
            for r in 0..n {
                assert_eq!(data.at(r, i), rows[r * d + i]);
                assert_eq!(data.column(i)[r], rows[r * d + i]);
            }
            assert!(data.xt()[i * ld + n..(i + 1) * ld]
                .iter()
                .all(|&v| v == 0.0));
        }
        let packed = data.packed_columns();
        assert_eq!(packed.len(), n * d);
        assert!((0..d).all(|i| packed[i * n..(i + 1) * n] == *data.column(i)));
        // A batch of 256 rows out of any set is padded too, and reads the same values.
        let pick: Vec<usize> = (0..256).map(|k| (k * 7) % n).collect();
        let batch = data.gather_rows(&pick);
        assert_eq!(batch.ld(), column_stride(256));
        for (k, &r) in pick.iter().enumerate() {
            assert!((0..d).all(|i| batch.at(k, i) == data.at(r, i)));
            assert_eq!(batch.y()[k], y[r]);
        }
        let again = data.with_targets(vec![0.5; n]).unwrap();
        assert_eq!(again.ld(), ld);
        assert!(again.with_targets(vec![f32::NAN; n]).is_err());
    }
}

#[test]
fn generators_are_counter_based() {
    let mut rng = rng(4);
    let data = data(&mut rng, 10, 6);
    let a = Operator::new(data.clone(), 50, Generators::Random { seed: 9 }).unwrap();
    let b = Operator::new(data, 3, Generators::Random { seed: 9 }).unwrap();
    // Neuron 2's generator does not depend on the width or on which neurons were drawn before.
    assert_eq!(a.generator(2), b.generator(2));
    assert_ne!(a.generator(2), a.generator(3));
    assert!(a.generator(2).iter().all(|&v| v != 0.0));
}

#[test]
fn invalid_operators_are_errors() {
    let mut rng = rng(5);
    let data = data(&mut rng, 4, 3);
    assert!(Operator::new(data.clone(), 0, Generators::Random { seed: 0 }).is_err());
    let w = relu_iht::SparseVec::zeros(5);
    let err = Operator::new(data.clone(), 2, Generators::Weights(w)).unwrap_err();
    assert!(err.to_string().contains("expected 6"), "{err}");
    let nan = Data::from_columns(1, 1, vec![f32::NAN], vec![0.0]).unwrap_err();
    assert!(nan.to_string().contains("NaN"), "{nan}");
    assert!(Data::from_columns(0, 1, vec![], vec![]).is_err());
}

/// The CPU support pass gives the same bits on every instruction set this processor has
/// (portable, AVX2+FMA, AVX-512F), with and without y, on shapes off the 32-row and 256-row
/// grids and with neurons of one and of several weights, in the plain layout and with the mask
/// classes the engine prepares (which must match the dense formula); and the engine's fused
/// result equals its separate products.
#[test]
fn support_pass_is_the_same_on_every_instruction_set() {
    use relu_iht::cpu::simd::Isa;
    use relu_iht::cpu::support_pass::{forward_adjoint_on, ChunkMasks};
    let levels: Vec<Isa> = [Isa::Portable, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|&isa| isa <= Isa::detected())
        .collect();
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    let mut rng = rng(7);
    let shapes = SHAPES
        .iter()
        .copied()
        .chain([(257, 5, 40), (600, 30, 9), (333, 3, 64)]);
    let mut shared = 0;
    for (n, d, m) in shapes {
        let data = data(&mut rng, n, d);
        let mut ops = operators(&mut rng, data.clone(), m);
        // h = w with one weight per neuron on few inputs: most neurons fall into mask classes.
        let w: Vec<(u32, f32)> = (0..m)
            .map(|j| {
                (
                    (j * d + j % d) as u32,
                    if j % 3 == 0 { -0.7 } else { 1.3 + j as f32 },
                )
            })
            .collect();
        let w = relu_iht::SparseVec::from_pairs((m * d) as u64, w).unwrap();
        ops.push(Operator::new(data, m, Generators::Weights(w.clone())).unwrap());
        for op in ops {
            let own = match op.generators() {
                Generators::Weights(w) => Some(w.clone()),
                Generators::Random { .. } => None,
            };
            let mut supports: Vec<relu_iht::SparseVec> = [1, (m * d).div_ceil(5), m * d]
                .iter()
                .map(|&nnz| sparse(&mut rng, m * d, nnz))
                .collect();
            // The generators' own support with other values (the steady state of h = w).
            supports.extend(own.map(|w| {
                let vals = nonzero(&mut rng, w.nnz());
                relu_iht::SparseVec::from_pairs(
                    w.len(),
                    w.indices().iter().copied().zip(vals).collect(),
                )
                .unwrap()
            }));
            for x in supports {
                let nnz = x.nnz();
                let t = Support::new(x.indices(), d);
                let neurons: Vec<u32> = t.runs.iter().map(|run| run.0).collect();
                let mask_bits = Masks::compute(&op, &neurons);
                let plain = ChunkMasks::new(&mask_bits, neurons.len());
                let classes = ChunkMasks::new(&mask_bits, neurons.len()).with_classes(&op, &t);
                shared += classes.entries_in_classes();
                for residual in [false, true] {
                    let mut last = None;
                    for (layout, masks) in [("plain", &plain), ("classes", &classes)] {
                        let mut first: Option<(Vec<f32>, Vec<f32>)> = None;
                        for &isa in &levels {
                            let (mut q, mut h) = (vec![0.0; n], vec![0.0; t.len()]);
                            let z = x.values();
                            forward_adjoint_on(isa, &op, &t, masks, z, residual, &mut q, &mut h);
                            let case =
                                format!("{layout} {} n={n} d={d} m={m} nnz={nnz}", isa.name());
                            match &first {
                                None => first = Some((q, h)),
                                Some((q0, h0)) => {
                                    assert_eq!(bits(&q), bits(q0), "{case}: q");
                                    assert_eq!(bits(&h), bits(h0), "{case}: h");
                                }
                            }
                        }
                        let (q, h) = first.unwrap();
                        // Against the dense formula (f32 sums of ≤ |T| terms; see above).
                        let mut want = op.dense_forward(&x.to_dense());
                        if residual {
                            for (w, &y) in want.iter_mut().zip(op.data().y()) {
                                *w -= y as f64;
                            }
                        }
                        let zs = x.values().iter().map(|v| v.abs() as f64).sum::<f64>();
                        let case = format!("{layout} n={n} d={d} m={m} nnz={nnz}");
                        assert_close(&format!("{case}: q"), &q, &want, 1e-5, 1.1 * zs + 2.0);
                        let dense = op.dense_adjoint(&q);
                        let want: Vec<f64> =
                            x.indices().iter().map(|&c| dense[c as usize]).collect();
                        let qs = q.iter().map(|v| v.abs() as f64).sum::<f64>();
                        assert_close(&format!("{case}: h"), &h, &want, 1e-5, 1.21 * qs + 1e-6);
                        last = Some((q, h));
                    }
                    // The engine prepares the classes: its fused pass is the one above, and equals
                    // its separate products.
                    let (q, h) = last.unwrap();
                    let mut be = CpuBackend::new();
                    be.prepare_support(&op, x.indices()).unwrap();
                    let want_q = if residual {
                        be.residual(&op, x.values()).unwrap()
                    } else {
                        be.forward(&op, x.values()).unwrap()
                    };
                    assert_eq!(q, want_q, "n={n} d={d} m={m}: fused q");
                    assert_eq!(
                        h,
                        be.adjoint(&op, &q).unwrap(),
                        "n={n} d={d} m={m}: fused h"
                    );
                }
            }
        }
    }
    assert!(
        shared > 100,
        "the mask classes were exercised: {shared} entries"
    );
}
