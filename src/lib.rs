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
//! ## Modules
//! - [`data`]: the data set layout (column-major X, finite values).
//! - [`operator`]: the implicit operator, generator vectors, dense references for tests.
//! - [`backend`]: the operations a backend provides; [`cpu`]: the CPU engine (one twin per kernel).
//! - [`topk`]: streaming top-s selection; [`stream`]: tile and block planning.
//! - [`iht`]: the solver (`Iht::new`, `step`, `run`, `solve` → [`iht::Recovery`]).
//! - [`tasks`]: planted recovery and metrics.
//! - [`rng`]: counter-based random numbers; [`sparse`]: the sparse iterate; [`mem`]: peak memory.

pub mod backend;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod deep;
pub mod error;
pub mod gpu;
pub mod iht;
pub mod imp;
pub mod mem;
pub mod operator;
pub mod plot;
pub mod rng;
pub mod sparse;
pub mod stream;
pub mod tasks;
pub mod topk;
pub mod vector;

pub use backend::Backend;
pub use error::{Error, Result};
pub use iht::{Iht, IhtConfig, Recovery};
pub use operator::{Generators, Mode, Operator};
pub use sparse::SparseVec;
