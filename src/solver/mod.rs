//! The solvers, written once against [`crate::backend::Backend`]: scalar-output IHT
//! ([`scalar`]), the vector-output model ([`vector`]), greedy depth ([`depth`]), checkpoints of a
//! scalar solve ([`checkpoint`]), the options beyond the paper made safe ([`polish`]: they may
//! only improve the returned network's fit), and the validation, generator schedule and minibatch
//! shuffles they share ([`schedule`]). No solver names an engine: the caller hands one in.

pub mod checkpoint;
pub mod depth;
pub mod polish;
pub mod scalar;
pub mod schedule;
pub mod vector;

pub use scalar::{Iht, IhtConfig, Recovery, StepRecord};
pub use vector::{VectorConfig, VectorIht};
