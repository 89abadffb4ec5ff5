//! The engine boundary: the solver's phases, each one operation of an engine (SPEC §6).
//!
//! A scalar IHT step is two calls: [`Backend::gradient_phase`] (the residual on the old support,
//! the normalized step size and the streamed gradient pass with its running top-s) and
//! [`Backend::support_phase`] (the Armijo gradient steps on the new support). The vector model's
//! step is [`Backend::vector_step`]. Everything a phase decides — μ, each Armijo trial, the reset,
//! which candidates survive — is decided inside the engine: on a GPU, on the device, so that a
//! step costs two readbacks, not one per decision.
//!
//! The rules themselves are written once, in [`rules`], against the small set of support
//! primitives [`SupportOps`] (`A_T z`, `A_Tᵀ r`, norms). The CPU engine runs them as they are;
//! the WebGPU engine implements the same rules in kernels and is tested against them. The
//! primitives are the engines' own vocabulary: the solver never calls them.

use crate::error::Result;
use crate::problem::model::{Blocks, Loss, VectorStep};
use crate::problem::operator::Operator;
use crate::problem::sparse::SparseVec;

/// What the gradient phase returns: the thresholded candidate `z₀` (support T, sorted) and the
/// normalized step size μ it was taken with.
#[derive(Clone, Debug)]
pub struct GradientPhase {
    pub z0: SparseVec,
    pub mu: f64,
}

/// What the support phase returns (the values in the engine's element type `E`; f32 at the
/// solver's boundary).
#[derive(Clone, Debug)]
pub struct SupportPhase<E = f32> {
    /// The values on T after the inner steps.
    pub z: Vec<E>,
    /// `‖A_T z − y‖²`.
    pub f: f64,
    /// The step size after the line search (it carries over inside the step).
    pub mu: f64,
    /// Armijo trials evaluated.
    pub trials: usize,
    /// Inner steps whose line search gave up and reset z to z₀.
    pub resets: usize,
}

/// Device time per kernel entry point (`"<kernel>.<entry>"`) from timestamp queries:
/// milliseconds summed over dispatches, and the number of dispatches.
pub type KernelTimes = std::collections::BTreeMap<String, (f64, u64)>;

/// Work an engine has sent to its device, counted since it was built (all zero on the CPU).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Queue submissions.
    pub submits: u64,
    /// Device-to-host readbacks (one map and wait each).
    pub readbacks: u64,
    /// Bytes read back.
    pub readback_bytes: u64,
    /// Microseconds the host spent blocked in readbacks (from submitting a readback to holding
    /// its bytes: the device finishing the queued work, the copy and the mapping).
    pub readback_wait_us: u64,
    /// Compute dispatches.
    pub dispatches: u64,
    /// Device buffers created (pooled reuse is not a creation).
    pub buffers_created: u64,
    /// Bind groups created (cached ones are not).
    pub bind_groups_created: u64,
}

impl Counters {
    /// The work done between `earlier` and `self`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            submits: self.submits - earlier.submits,
            readbacks: self.readbacks - earlier.readbacks,
            readback_bytes: self.readback_bytes - earlier.readback_bytes,
            readback_wait_us: self.readback_wait_us - earlier.readback_wait_us,
            dispatches: self.dispatches - earlier.dispatches,
            buffers_created: self.buffers_created - earlier.buffers_created,
            bind_groups_created: self.bind_groups_created - earlier.bind_groups_created,
        }
    }
}

/// An engine that can run the IHT solver: the solver's phases.
pub trait Backend {
    /// Human-readable engine name (reported as `backend` in JSON).
    fn name(&self) -> String;

    /// SPEC §2 steps 1–2 under `op`'s generators: on the old support S = supp(x),
    /// `r = A_S x_S − y`, `g = A_Sᵀ r` and `μ = ‖g‖² / (‖A_S g‖² + 1e-8)` (`1e-14` when S is
    /// empty); then, over every live block, the candidates `x − μ Aᵀ r` reduced to the `keep`
    /// largest by magnitude (ties by the smaller index, zeros dropped). See [`rules`].
    fn gradient_phase(
        &mut self,
        op: &Operator,
        x: &SparseVec,
        keep: usize,
    ) -> Result<GradientPhase>;

    /// SPEC §2 step 3 on T = supp(z0), starting from `z0` with step size `mu`: up to `inner_steps`
    /// Armijo gradient steps with the reset rule. See [`rules::support_phase`].
    fn support_phase(
        &mut self,
        op: &Operator,
        z0: &SparseVec,
        mu: f64,
        inner_steps: usize,
    ) -> Result<SupportPhase>;

    /// Least squares on the support of `x` with the masks fixed, by `iters` CGLS iterations
    /// (hard thresholding pursuit's debiasing step). See [`rules::cgls`].
    fn refine(&mut self, op: &Operator, x: &SparseVec, iters: usize) -> Result<SparseVec>;

    /// The model output `A_S x_S` on `op`'s rows.
    fn predict(&mut self, op: &Operator, x: &SparseVec) -> Result<Vec<f32>>;

    /// The vector-output model's `Ŷ` (n × k row-major) for the weights `b` of the operator's
    /// live neurons under its masks (SPEC §3).
    fn vector_forward(&mut self, op: &Operator, b: &Blocks, k: usize) -> Result<Vec<f32>>;

    /// One vector-output step on the operator's rows: the loss and residual `∂loss/∂Ŷ` at the
    /// weights `cur`, the chain-rule gradients at `at` (default `cur`) with masks fixed, and the
    /// candidates `at − α G`. `targets` is n × k row-major.
    #[allow(clippy::too_many_arguments)] // the step's inputs, each named by SPEC §3
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

    /// Work sent to the device so far (zero for the CPU).
    fn counters(&self) -> Counters {
        Counters::default()
    }

    /// Forgets what the engine keeps between steps to avoid recomputing it (the GPU engine's
    /// masks under the run's random generators), so that the next step computes everything, as
    /// the first step of a run does: what a benchmark calls before each timed run.
    fn forget_kept(&mut self) {}

    /// Starts timing the device's kernels with timestamp queries; false where the engine has
    /// no device or the device no timestamps.
    fn start_profile(&mut self) -> bool {
        false
    }

    /// The kernel times gathered since [`start_profile`](Self::start_profile), which stops.
    fn take_profile(&mut self) -> Option<KernelTimes> {
        None
    }
}

/// The element type of an engine's support primitives: f32 for the f32 engines, f64 for the CPU
/// engine at `--precision f64`. The rules of [`rules`] are written once over it.
pub trait Elem: Copy + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    const ZERO: Self;
    fn to_f64(self) -> f64;
    /// Rounds (or keeps) an f64.
    fn from_f64(v: f64) -> Self;
    /// `self · a + b` with one rounding.
    fn mul_add(self, a: Self, b: Self) -> Self;
}

impl Elem for f32 {
    const ZERO: Self = 0.0;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }
}

impl Elem for f64 {
    const ZERO: Self = 0.0;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }
}

/// The support primitives an engine builds its phases from (and the tests check: the adjoint dot
/// test, forward against dense references). Not part of the solver's boundary.
pub trait SupportOps {
    /// An n-vector owned by the engine.
    type Vector;
    /// The type of the support's values (`z`, `A_Tᵀ r`).
    type Elem: Elem;

    /// Copies a host vector into the engine.
    fn upload(&mut self, host: &[f32]) -> Result<Self::Vector>;

    /// Copies an engine vector to the host.
    fn download(&mut self, v: &Self::Vector) -> Result<Vec<f32>>;

    /// Fixes the support `T` (sorted, unique) of the next forward/adjoint calls, computing the
    /// masks of its neurons from the operator's generators.
    fn prepare_support(&mut self, op: &Operator, support: &[u32]) -> Result<()>;

    /// `A_T z` for the prepared support (`z.len() == |T|`).
    fn forward(&mut self, op: &Operator, z: &[Self::Elem]) -> Result<Self::Vector>;

    /// `A_Tᵀ r` for the prepared support.
    fn adjoint(&mut self, op: &Operator, r: &Self::Vector) -> Result<Vec<Self::Elem>>;

    /// `A_T z − y`.
    fn residual(&mut self, op: &Operator, z: &[Self::Elem]) -> Result<Self::Vector>;

    /// `q = A_T z` (minus y when `residual`) and `A_Tᵀ q` together: the inner step's one pass
    /// (an engine may fuse them so that each block of rows is read once).
    fn forward_adjoint(
        &mut self,
        op: &Operator,
        z: &[Self::Elem],
        residual: bool,
    ) -> Result<(Self::Vector, Vec<Self::Elem>)> {
        let q = if residual {
            self.residual(op, z)?
        } else {
            self.forward(op, z)?
        };
        let h = self.adjoint(op, &q)?;
        Ok((q, h))
    }

    /// `‖v‖²`, accumulated in f64 (or compensated).
    fn norm2(&mut self, v: &Self::Vector) -> Result<f64>;

    /// `‖r − μ q‖²` without forming the vector (the Armijo test).
    fn shifted_norm2(&mut self, r: &Self::Vector, q: &Self::Vector, mu: f64) -> Result<f64>;

    /// `r ← r − μ q`.
    fn axpy(&mut self, r: &mut Self::Vector, q: &Self::Vector, mu: f64) -> Result<()>;
}

/// The rules of SPEC §2, written once over [`SupportOps`]: the CPU engine runs these, the GPU
/// engine's kernels implement the same decisions on the device and are tested against them.
pub mod rules {
    use super::{Elem, SupportOps, SupportPhase};
    use crate::error::Result;
    use crate::problem::operator::Operator;
    use crate::problem::sparse::SparseVec;

    /// Armijo trials per inner step before the reset: μ, μ/2, …, μ/2¹⁰.
    pub const TRIALS: usize = 11;
    /// The sufficient-decrease constant of the Armijo test.
    pub const ARMIJO_C: f64 = 0.9;
    /// Added to `‖A_S g‖²` in the normalized step size.
    pub const NIHT_EPS: f64 = 1e-8;
    /// The step size when the old support is empty.
    pub const EMPTY_MU: f64 = 1e-14;

    fn sum_sq<E: Elem>(v: &[E]) -> f64 {
        v.iter().map(|&x| x.to_f64() * x.to_f64()).sum()
    }

    /// Step 1: `r = A_S x_S − y` and the normalized step size on the prepared support S.
    pub fn niht<P: SupportOps<Elem = f32>>(
        p: &mut P,
        op: &Operator,
        x: &SparseVec,
    ) -> Result<(P::Vector, f64)> {
        niht_on(p, op, x.indices(), x.values())
    }

    /// [`niht`] for the support `idx` with values `x` in the engine's element type.
    pub fn niht_on<P: SupportOps>(
        p: &mut P,
        op: &Operator,
        idx: &[u32],
        x: &[P::Elem],
    ) -> Result<(P::Vector, f64)> {
        p.prepare_support(op, idx)?;
        if x.is_empty() {
            return Ok((p.residual(op, x)?, EMPTY_MU));
        }
        let (r, g) = p.forward_adjoint(op, x, true)?;
        let ag = p.forward(op, &g)?;
        let mu = sum_sq(&g) / (p.norm2(&ag)? + NIHT_EPS);
        Ok((r, mu))
    }

    /// Step 3: up to `inner` gradient steps on T = supp(z0) from z0. Each step: stop when
    /// g = A_Tᵀ r is 0; trial points `z − μ2⁻ʲ g`, j = 0..11, whose residual is `r − μ2⁻ʲ q`
    /// with `q = A_T g` (O(n) each); accept the first with `‖·‖² ≤ f − 0.9 μ2⁻ʲ ‖g‖²`, keeping
    /// μ2⁻ʲ; when none passes, μ ← μ2⁻¹¹ and z, r, g, f go back to z0's. μ carries over.
    ///
    /// The next step's gradient is carried, not recomputed: `g ← g − μ A_Tᵀ q` (equal to
    /// `A_Tᵀ(r − μ q)`), so a step is one [`SupportOps::forward_adjoint`] pass over the rows.
    pub fn support_phase<P: SupportOps<Elem = f32>>(
        p: &mut P,
        op: &Operator,
        z0: &SparseVec,
        mu: f64,
        inner: usize,
    ) -> Result<SupportPhase> {
        support_phase_on(p, op, z0.indices(), z0.values(), mu, inner)
    }

    /// [`support_phase`] on the support `idx` from the values `z0` in the engine's element type.
    pub fn support_phase_on<P: SupportOps>(
        p: &mut P,
        op: &Operator,
        idx: &[u32],
        z0: &[P::Elem],
        mut mu: f64,
        inner: usize,
    ) -> Result<SupportPhase<P::Elem>> {
        p.prepare_support(op, idx)?;
        let mut z = z0.to_vec();
        let (mut r, mut g) = p.forward_adjoint(op, &z, true)?;
        let f_tilde = p.norm2(&r)?;
        let mut f = f_tilde;
        let (mut trials, mut resets) = (0, 0);
        for _ in 0..inner {
            let gg = sum_sq(&g);
            if gg == 0.0 {
                break;
            }
            let (q, h) = p.forward_adjoint(op, &g, false)?;
            let mut accepted = false;
            for _ in 0..TRIALS {
                let f_next = p.shifted_norm2(&r, &q, mu)?;
                trials += 1;
                if f_next <= f - ARMIJO_C * mu * gg {
                    for (zk, &gk) in z.iter_mut().zip(&g) {
                        *zk = P::Elem::from_f64(zk.to_f64() - mu * gk.to_f64());
                    }
                    // In the element type with one rounding, as the device does it in f32
                    // (μ2⁻ʲ is exact in f32).
                    let m = P::Elem::from_f64(-mu);
                    for (gk, &hk) in g.iter_mut().zip(&h) {
                        *gk = m.mul_add(hk, *gk);
                    }
                    p.axpy(&mut r, &q, mu)?;
                    f = f_next;
                    accepted = true;
                    break;
                }
                mu /= 2.0;
            }
            if !accepted {
                z.copy_from_slice(z0);
                (r, g) = p.forward_adjoint(op, &z, true)?;
                f = f_tilde;
                resets += 1;
            }
        }
        Ok(SupportPhase {
            z,
            f,
            mu,
            trials,
            resets,
        })
    }

    /// Least squares on the support of `x` with the masks fixed, by conjugate gradients on the
    /// normal equations (CGLS), matrix-free.
    pub fn cgls<P: SupportOps<Elem = f32>>(
        p: &mut P,
        op: &Operator,
        x: &SparseVec,
        iters: usize,
    ) -> Result<SparseVec> {
        let z = cgls_on(p, op, x.indices(), x.values(), iters)?;
        Ok(SparseVec::from_sorted(x.len(), x.indices().to_vec(), z))
    }

    /// [`cgls`] on the support `idx` from the values `x` in the engine's element type.
    pub fn cgls_on<P: SupportOps>(
        p: &mut P,
        op: &Operator,
        idx: &[u32],
        x: &[P::Elem],
        iters: usize,
    ) -> Result<Vec<P::Elem>> {
        p.prepare_support(op, idx)?;
        let mut z = x.to_vec();
        let mut res = p.residual(op, &z)?;
        let mut s = p.adjoint(op, &res)?;
        let mut dir = s.clone();
        let mut gamma = sum_sq(&s);
        let gamma0 = gamma;
        for _ in 0..iters {
            if gamma <= gamma0 * 1e-14 || gamma == 0.0 {
                break;
            }
            let q = p.forward(op, &dir)?;
            let qq = p.norm2(&q)?;
            if qq == 0.0 {
                break;
            }
            let alpha = gamma / qq;
            for (zk, &pk) in z.iter_mut().zip(&dir) {
                *zk = P::Elem::from_f64(zk.to_f64() - alpha * pk.to_f64());
            }
            p.axpy(&mut res, &q, alpha)?;
            s = p.adjoint(op, &res)?;
            let gamma_next = sum_sq(&s);
            let beta = gamma_next / gamma;
            for (pk, &sk) in dir.iter_mut().zip(&s) {
                *pk = P::Elem::from_f64(sk.to_f64() + beta * pk.to_f64());
            }
            gamma = gamma_next;
        }
        Ok(z)
    }

    /// `A_S x_S` on the host.
    pub fn predict<P: SupportOps<Elem = f32>>(
        p: &mut P,
        op: &Operator,
        x: &SparseVec,
    ) -> Result<Vec<f32>> {
        p.prepare_support(op, x.indices())?;
        let out = p.forward(op, x.values())?;
        p.download(&out)
    }
}
