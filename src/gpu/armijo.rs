//! `armijo` on the device: the solver's scalar decisions — norms, the normalized step size, all
//! Armijo trials of an inner step in one pass, acceptance and reset, the updates of z and r —
//! with the state in one device buffer (`shaders/armijo.wgsl`; CPU twin `cpu::armijo`).

use super::buffers::{rows_grid, DeviceBuffer, Recorder};

/// Trials per inner step.
pub const TRIALS: usize = 11;
/// Most workgroups of the grid-strided sums (their partials fit one small buffer).
pub const MAX_GROUPS: usize = 256;

/// Mirrors `Params` of `shaders/armijo.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub len: u32,
    pub groups: u32,
    pub what: u32,
    pub _pad: u32,
}

/// Mirrors `State` of `shaders/armijo.wgsl` (its first word, μ, is also read by
/// `masked_gradient`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct State {
    pub mu: f32,
    pub action: u32,
    pub trials: u32,
    pub resets: u32,
    pub accepts: u32,
    pub _pad: [u32; 3],
    pub f: [f32; 2],
    pub f0: [f32; 2],
    pub gg: [f32; 2],
    pub qq: [f32; 2],
}

impl State {
    /// A fresh state with step size `mu`.
    pub fn with_mu(mu: f32) -> Self {
        Self {
            mu,
            ..Self::default()
        }
    }

    /// A double-f32 pair as f64.
    pub fn value(p: [f32; 2]) -> f64 {
        p[0] as f64 + p[1] as f64
    }
}

/// Bytes of the state.
pub const STATE_BYTES: u64 = std::mem::size_of::<State>() as u64;

/// Workgroups of a grid-strided sum over `len` elements: one per 256 elements, at most
/// [`MAX_GROUPS`].
pub fn groups(len: usize) -> u32 {
    len.div_ceil(256).clamp(1, MAX_GROUPS) as u32
}

/// What `finish` does with its total.
#[derive(Clone, Copy, Debug)]
pub enum Finish {
    /// `f = f0 = total` (the start of the support phase).
    Start = 0,
    /// `gg = total`.
    Gg = 1,
    /// `qq = total`, `μ = gg / (qq + 1e-8)`.
    Niht = 2,
}

/// Records `‖a‖²` into the state field `what` (two dispatches).
pub fn norm_into(
    rec: &mut Recorder<'_>,
    state: &DeviceBuffer,
    part: &DeviceBuffer,
    a: &DeviceBuffer,
    len: usize,
    what: Finish,
) {
    let p = Params {
        len: len as u32,
        groups: groups(len),
        what: what as u32,
        _pad: 0,
    };
    rec.dispatch("armijo.norm", &p, &[part, a], (p.groups, 1, 1));
    rec.dispatch("armijo.finish", &p, &[state, part], (1, 1, 1));
}

/// Records one inner step's line search: all trials of `‖r − μ2⁻ʲ q‖²`, then the decision.
pub fn trials_and_decide(
    rec: &mut Recorder<'_>,
    state: &DeviceBuffer,
    part: &DeviceBuffer,
    r: &DeviceBuffer,
    q: &DeviceBuffer,
    n: usize,
) {
    let p = Params {
        len: n as u32,
        groups: groups(n),
        what: 0,
        _pad: 0,
    };
    rec.dispatch("armijo.trials", &p, &[state, part, r, q], (p.groups, 1, 1));
    rec.dispatch("armijo.decide", &p, &[state, part], (1, 1, 1));
}

/// Records `a ← a − μ b` (accepted) or `a ← c` (reset), as the state's action says.
pub fn update(
    rec: &mut Recorder<'_>,
    state: &DeviceBuffer,
    a: &DeviceBuffer,
    b: &DeviceBuffer,
    c: &DeviceBuffer,
    len: usize,
) {
    if len == 0 {
        return;
    }
    let p = Params {
        len: len as u32,
        groups: 1,
        what: 0,
        _pad: 0,
    };
    rec.dispatch("armijo.update", &p, &[state, a, b, c], rows_grid(len));
}
