//! The tasks of SPEC §4: data, metrics and outputs.

pub mod fit;
pub mod inr;
pub mod metrics;
pub mod mnist;
pub mod planted;
