//! The few operations the solver needs, implemented once per engine (the CPU and WebGPU engines).
//!
//! The split follows what must live where: n-sized vectors (residuals, `A_T g`) are the backend's
//! own [`Backend::Vector`] and may stay on a device; support-sized vectors (`z`, `g_T`) and scalars
//! come back to the host, where the solver makes its decisions (thresholding, Armijo tests).
//! Every call names the [`Operator`] so a backend may cache per-operator uploads.

use crate::error::Result;
use crate::problem::model::{Blocks, Loss, VectorStep};
use crate::problem::operator::Operator;
use crate::problem::sparse::SparseVec;

/// An engine that can run the IHT solver.
pub trait Backend {
    /// An n-vector owned by the backend.
    type Vector;

    /// Human-readable engine name (reported as `backend` in JSON).
    fn name(&self) -> String;

    /// Copies a host vector into the backend.
    fn upload(&mut self, host: &[f32]) -> Result<Self::Vector>;

    /// Copies a backend vector to the host.
    fn download(&mut self, v: &Self::Vector) -> Result<Vec<f32>>;

    /// Fixes the support `T` (sorted, unique) used by the next forward/adjoint calls, computing
    /// whatever it needs (the masks of the neurons in T) from the operator's generators.
    fn prepare_support(&mut self, op: &Operator, support: &[u32]) -> Result<()>;

    /// `A_T z` for the prepared support (`z.len() == |T|`).
    fn forward(&mut self, op: &Operator, z: &[f32]) -> Result<Self::Vector>;

    /// `A_Tᵀ r` for the prepared support.
    fn adjoint(&mut self, op: &Operator, r: &Self::Vector) -> Result<Vec<f32>>;

    /// `A_T z − y`.
    fn residual(&mut self, op: &Operator, z: &[f32]) -> Result<Self::Vector>;

    /// `‖v‖²`, accumulated in f64 (or compensated).
    fn norm2(&mut self, v: &Self::Vector) -> Result<f64>;

    /// `‖r − μ q‖²` without forming the vector (the Armijo test).
    fn shifted_norm2(&mut self, r: &Self::Vector, q: &Self::Vector, mu: f64) -> Result<f64>;

    /// `r ← r − μ q`.
    fn axpy(&mut self, r: &mut Self::Vector, q: &Self::Vector, mu: f64) -> Result<()>;

    /// The streamed full-gradient pass (SPEC §2 step 2): over every live block, candidates
    /// `x − μ Aᵀ r`, reduced to the `keep` largest by magnitude (ties by index, zeros dropped).
    fn gradient_topk(
        &mut self,
        op: &Operator,
        x: &SparseVec,
        r: &Self::Vector,
        mu: f32,
        keep: usize,
    ) -> Result<SparseVec>;

    /// The vector-output model's `Ŷ` (n × k row-major) for the weights `b` of the operator's
    /// live neurons under its masks (SPEC §3).
    fn vector_forward(&mut self, op: &Operator, b: &Blocks, k: usize) -> Result<Vec<f32>>;

    /// One vector-output step on the operator's rows: the loss and residual `∂loss/∂Ŷ` at the
    /// weights `cur`, the chain-rule gradients at `at` (default `cur`) with masks fixed, and the
    /// candidates `at − α G`. `targets` is n × k row-major.
    #[allow(clippy::too_many_arguments)]
    fn vector_step(
        &mut self,
        op: &Operator,
        targets: &[f32],
        k: usize,
        loss: Loss,
        cur: &Blocks,
        at: Option<&Blocks>,
        alpha: f32,
    ) -> Result<VectorStep>;

    /// Peak bytes this backend allocated on its device (0 for the CPU).
    fn peak_device_bytes(&self) -> u64 {
        0
    }
}
