//! Checkpoints of a solve: the iterate, the global step and the step records, with a fingerprint
//! of the problem and settings that a resume must match. Everything else the solver uses is
//! derived from these (generators from the iterate and the step, batches from the seed and the
//! epoch), so a resumed solve continues bit for bit as the uninterrupted one on the same backend.
//! Files are written atomically ([`crate::atomic`]): a temporary file created exclusively beside
//! the target, then a rename; nothing is left behind on failure.

use crate::error::{Error, Result};
use crate::problem::sparse::SparseVec;
use crate::solver::scalar::StepRecord;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Format version of the file.
const VERSION: u32 = 1;

/// The saved state of a solve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// Problem and settings; a resume must present the same string.
    pub fingerprint: String,
    /// Global steps taken.
    pub t: usize,
    /// Length of the iterate (m·d).
    pub len: u64,
    pub idx: Vec<u32>,
    pub val: Vec<f32>,
    pub history: Vec<StepRecord>,
    /// Signed neurons' negative ones, once the switch has fixed them (absent before, and in the
    /// paper's algorithm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negated: Option<Vec<u32>>,
    /// Tail averaging's running sums so far (see `IhtConfig::average`): indices, sums, count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail_idx: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail_sums: Vec<f64>,
    #[serde(default)]
    pub tail_count: usize,
}

impl Checkpoint {
    pub fn new(
        fingerprint: &str,
        t: usize,
        x: &SparseVec,
        history: &[StepRecord],
        negated: Option<&[u32]>,
    ) -> Self {
        Self {
            negated: negated.map(<[u32]>::to_vec),
            tail_idx: Vec::new(),
            tail_sums: Vec::new(),
            tail_count: 0,
            version: VERSION,
            fingerprint: fingerprint.to_string(),
            t,
            len: x.len(),
            idx: x.indices().to_vec(),
            val: x.values().to_vec(),
            history: history.to_vec(),
        }
    }

    /// Adds tail averaging's running sums.
    pub fn with_tail(mut self, tail: &crate::solver::scalar::Tail) -> Self {
        self.tail_idx = tail.sums.keys().copied().collect();
        self.tail_sums = tail.sums.values().copied().collect();
        self.tail_count = tail.count;
        self
    }

    /// The iterate.
    pub fn x(&self) -> Result<SparseVec> {
        if self.idx.len() != self.val.len() {
            return Err(Error::invalid(
                "checkpoint",
                "iterate",
                "indices and values differ in length",
            ));
        }
        SparseVec::from_pairs(
            self.len,
            self.idx
                .iter()
                .copied()
                .zip(self.val.iter().copied())
                .collect(),
        )
    }

    /// Writes atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec(self).map_err(|e| Error::Format {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        crate::atomic::write(path, &text)
    }

    /// Reads a checkpoint and checks it belongs to the run described by `fingerprint`.
    pub fn load(path: &Path, fingerprint: &str) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes, path, fingerprint)
    }

    /// Parses checkpoint bytes (read from `path`, named in errors) of the run `fingerprint`.
    pub fn parse(bytes: &[u8], path: &Path, fingerprint: &str) -> Result<Self> {
        let bad = |why: String| Error::Format {
            path: path.display().to_string(),
            why,
        };
        let ck: Checkpoint = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("not a relu-iht checkpoint: {e}")))?;
        if ck.version != VERSION {
            return Err(bad(format!(
                "checkpoint version {} (this build reads {VERSION})",
                ck.version
            )));
        }
        if ck.fingerprint != fingerprint {
            return Err(bad(format!(
                "checkpoint of another run ({}), not of this one ({fingerprint})",
                ck.fingerprint
            )));
        }
        Ok(ck)
    }
}
