//! The IMP baseline (SPEC §5): a dense bias-free MLP (`Linear d→m, ReLU, [Linear m→m, ReLU]…,
//! Linear m→k`) trained with Adam, then pruned by global magnitude 10% of the remaining weights at
//! a time, survivors rewound to their initial values, and retrained, round after round, until
//! every requested budget s is met. The result for s is the first round whose kept count is ≤ s,
//! scored with that round's trained weights after pruning (as the reference does); optionally also
//! the network retrained once from the rewound init at that mask.
//!
//! Invariants: pruned weights are exactly zero at all times (gradients and weights are masked at
//! every step); every random draw (init, epoch shuffles) is a pure function of the seed, so the
//! same inputs and seed give the same weights bit for bit on the same machine. The trainer holds
//! the dense model — weights, gradients, two Adam moments, init copy and mask, six floats per
//! weight (the point of the comparison with IHT) — plus activations for one batch.
//!
//! Layout: `config` holds the run's settings and their validation, `mlp` the network with its
//! forward and backward passes, `train` Adam, magnitude pruning and the IMP loop itself.

mod config;
mod mlp;
mod train;

pub use config::ImpConfig;
pub use mlp::Mlp;
pub use train::{imp, prune_count, Adam, BudgetPick, ImpResult, RoundReport};
