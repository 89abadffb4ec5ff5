//! The one integration-test binary (STYLE: tests/ holds a single binary with a module per area).

mod cli;
mod common;
mod deep;
mod gpu;
mod gradient;
mod iht;
mod inr;
mod mnist;
mod operator;
mod shaders;
mod twins;
mod vector;
