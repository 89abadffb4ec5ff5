//! # relu-iht
//!
//! Recovers sparse two-layer ReLU networks by iterative hard thresholding (IHT), following
//! *A Recovery Guarantee for Sparse Neural Networks* (Fridovich-Keil & Pilanci, arXiv 2509.20323).
//!
//! A network `f(x) = Σ_j relu(xᵀu_j) v_j` with fused weights `w_j = u_j v_j` is linear in
//! `w = [w_1; …; w_m]` once each neuron's activation pattern is fixed by a generator vector `h_j`:
//! `ŷ = A w` with `A = [D_1 X, …, D_m X]`, `D_j = diag(1{X h_j > 0})`. IHT alternates a gradient
//! step with keeping the `s` largest weights. The engine never stores `A` (n × m·d) nor the dense
//! gradient: blocks are formed tile by tile, candidates stream into a running top-s, and support
//! products use packed activation bits, so memory grows with `s`, not with `m`.
//!
//! ## Modules (bottom-up)
//! - [`error`], [`mem`]: typed errors; peak memory.
//! - [`problem`]: data, the implicit operator and its generators, rng, the sparse iterate,
//!   streaming top-s, tile planning, the model types engines and solvers share.
//! - [`backend`]: the operations an engine provides; [`cpu`] and [`gpu`]: the two engines.
//! - [`solver`]: scalar IHT (`Iht` → `Recovery`), the vector model, depth, checkpoints.
//! - [`tasks`]: planted recovery, MNIST, INR and their metrics; [`imp`]: the IMP baseline;
//!   [`plot`]: figures.

pub mod backend;
pub mod cpu;
pub mod error;
pub mod gpu;
pub mod imp;
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
