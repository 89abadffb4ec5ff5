//! # relu-iht
//!
//! Recovers sparse two-layer ReLU networks by iterative hard thresholding (IHT), on the CPU and
//! on any GPU through WebGPU, following *A Recovery Guarantee for Sparse Neural Networks*
//! (Fridovich-Keil & Pilanci, arXiv 2509.20323).
//!
//! ## The idea
//!
//! A network `f(x) = Σ_j relu(xᵀu_j) v_j` with fused weights `w_j = u_j v_j` is linear in
//! `w = [w_1; …; w_m]` once each neuron's activation pattern is fixed by a generator vector `h_j`:
//! `ŷ = A w` with `A = [D_1 X, …, D_m X]` and `D_j = diag(1{X h_j > 0})`. The generators are
//! random for the first steps and then the current weights themselves (`h_j = w_j`, the
//! sequential-convex mode), so the fitted model is exactly `Σ_j relu(X w_j)`. IHT alternates a
//! gradient step on `½‖A w − y‖²` with keeping the `s` largest weights, then polishes the kept
//! support with a few Armijo steps. `A` (n × m·d) and the dense gradient are never stored: blocks
//! are formed tile by tile, candidates stream into a running top-s, and products on the support
//! use packed activation bits, so memory grows with `s`, not with the width `m`.
//!
//! ## Modules, bottom-up (no cycles)
//!
//! - [`error`], [`mem`]: typed errors ([`Error`], [`Result`]); peak memory.
//! - [`problem`]: what a fit is about, independent of how it is computed: [`Data`] and row
//!   sources, the implicit [`Operator`] with its [`Generators`] and [`Mode`], counter-based rng,
//!   the sparse iterate [`SparseVec`], streaming top-s, tile planning, the model types the
//!   engines and solvers share, and the fitted network as dense layers
//!   ([`problem::network::Network`]).
//! - [`backend`]: the [`Backend`] trait, the solver's phases an engine runs (a scalar step is
//!   `gradient_phase` then `support_phase`, each decided entirely inside the engine — on a GPU, on
//!   the device, with two readbacks a step), the rules of those phases written once over the
//!   support primitives, and the [`backend::Counters`] of what reached a device.
//! - [`cpu`] ([`CpuBackend`]) and [`gpu`] ([`GpuBackend`] on a [`GpuContext`]): the engines, one
//!   kernel family per file, each GPU kernel with a CPU twin of the same name.
//! - [`solver`]: scalar IHT ([`Iht`], [`IhtConfig`] → [`Recovery`], [`StepRecord`]), the
//!   vector-output model, greedy depth, checkpoints, and the schedule they share.
//! - [`io`]: the user's data in (`.npy` arrays, CSV tables) and the network out (the safetensors
//!   model file, in PyTorch's `nn.Sequential` layout).
//! - [`tasks`]: planted recovery, MNIST, INR and their metrics; [`imp`]: the iterative magnitude
//!   pruning baseline; [`plot`]: heatmaps and curves.
//!
//! The `relu-iht` binary (its `cli` module) turns command-line flags into these configs.
//!
//! ## Fitting your own data
//!
//! `X` is n × d, row-major; here the targets come from one planted ReLU neuron with 3 nonzero
//! weights, which a fit with budget `s = 3` recovers:
//!
//! ```
//! use relu_iht::{CpuBackend, Data, Generators, Iht, IhtConfig, Operator};
//! use std::sync::Arc;
//!
//! // Inputs: n × d standard normal values from a small deterministic generator.
//! let (n, d) = (400, 8);
//! let mut state = 0x2545_f491_4f6c_dd1d_u64;
//! let mut uniform = move || {
//!     state ^= state << 13;
//!     state ^= state >> 7;
//!     state ^= state << 17;
//!     (state >> 11) as f64 / (1u64 << 53) as f64
//! };
//! let x: Vec<f32> = (0..n * d)
//!     .map(|_| {
//!         let (u, v) = (uniform().max(1e-12), uniform());
//!         ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
//!     })
//!     .collect();
//! // Targets: y = relu(x · w*) with w* = (1.5, 0, −2, 0, 0, 1, 0, 0).
//! let teacher = [1.5f32, 0.0, -2.0, 0.0, 0.0, 1.0, 0.0, 0.0];
//! let y: Vec<f32> = x
//!     .chunks(d)
//!     .map(|row| row.iter().zip(&teacher).map(|(a, b)| a * b).sum::<f32>().max(0.0))
//!     .collect();
//!
//! let data = Arc::new(Data::from_rows(n, d, &x, y.clone())?);
//! // m = 4 neurons, budget s = 3, the paper's 15 steps; the operator's generators are replaced
//! // by the solver's schedule.
//! let op = Operator::new(data.clone(), 4, Generators::Random { seed: 0 })?;
//! let mut solver = Iht::new(CpuBackend::new(), op, IhtConfig::new(3, 15))?;
//! let recovery = solver.solve()?;
//!
//! let yhat = recovery.predict(&data)?;
//! let err: f64 = y.iter().zip(&yhat).map(|(a, b)| (a - b).powi(2) as f64).sum::<f64>().sqrt()
//!     / y.iter().map(|a| (a * a) as f64).sum::<f64>().sqrt();
//! assert_eq!(recovery.x.nnz(), 3);
//! assert!(err < 1e-4, "relative error {err}");
//! # Ok::<(), relu_iht::Error>(())
//! ```
//!
//! Progress can be followed with [`Iht::on_step`]; [`IhtConfig`] holds the options the paper
//! lacks (a stopping tolerance, support inflation, a final least-squares refinement), and
//! [`GpuBackend`] runs the same solve on a GPU.

pub mod atomic;
pub mod backend;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod imp;
pub mod io;
pub mod mem;
pub mod plot;
pub mod problem;
pub mod solver;
pub mod tasks;

pub use backend::Backend;
pub use cpu::CpuBackend;
pub use error::{Error, Result};
pub use gpu::{GpuBackend, GpuContext};
pub use problem::data::Data;
pub use problem::operator::{Generators, Mode, Operator};
pub use problem::sparse::SparseVec;
pub use solver::scalar::{Iht, IhtConfig, Recovery, StepRecord};
