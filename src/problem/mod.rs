//! The problem, independent of any engine or solver (SPEC §1): the data set and where its rows come
//! from ([`data`]), the implicit operator and its generators ([`operator`]), counter-based random
//! numbers ([`rng`]), the sparse iterate ([`sparse`]), tile and block planning ([`stream`]),
//! streaming top-s selection ([`topk`]), the model types the engines and solvers share
//! ([`model`]), and the fitted network as dense layers ([`network`]) with its products ([`dense`]). Depends on nothing in the crate but [`crate::error`].

pub mod data;
pub mod dense;
pub mod model;
pub mod network;
pub mod operator;
pub mod rng;
pub mod sparse;
pub mod stream;
pub mod topk;

pub use data::{Data, InMemory, RowSource};
pub use model::{Blocks, Loss, Select, VectorStep};
pub use operator::{Generators, Mode, Operator};
pub use sparse::SparseVec;
