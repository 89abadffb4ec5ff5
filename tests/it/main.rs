//! The one integration-test binary (STYLE: tests/ holds a single binary with a module per area).

mod cli;
mod common;
mod deep;
mod engines;
mod fuzz;
mod gpu;
mod gradient;
mod iht;
mod imp;
mod inr;
mod mnist;
mod model_file;
mod operator;
mod options;
mod plot;
mod shaders;
mod sweep;
mod twins;
mod vector;
