//! `--method imp` on any task: the IMP baseline (SPEC §5) on the task's own training data, one
//! result (JSON record or summary line) per budget s, each scored by the task's own metric.

use super::args::{BackendChoice, SolverArgs};
use super::report::RunRecord;
use anyhow::{bail, Result};
use relu_iht::imp::{imp, ImpConfig, Mlp};
use relu_iht::mem::peak_host_bytes;
use relu_iht::problem::data::Data;
use relu_iht::problem::model::Loss;
use relu_iht::solver::scalar::IhtConfig;
use serde_json::{json, Value};

/// Which model a score is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The dense network after round 0's training.
    Dense,
    /// The pick for the i-th budget, after its round's pruning (how the reference scores IMP).
    Pruned(usize),
    /// The same mask retrained once from the rewound weights (`--imp-retrain`).
    Retrained(usize),
}

/// An IMP run of one task.
pub struct ImpRun<'a> {
    pub task: &'static str,
    pub solver: &'a SolverArgs,
    pub config: &'a IhtConfig,
    pub m: usize,
    pub k: usize,
    pub loss: Loss,
    pub data: &'a Data,
    pub targets: &'a [f32],
    /// Task fields added to every record.
    pub extra: Value,
}

/// Merges the object `b` into the object `a`.
fn merge(a: &mut Value, b: Value) {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
}

/// Trains, prunes and scores: `score(model, which)` returns the task's metric fields (JSON
/// object) and a one-line summary.
pub fn run(
    r: ImpRun<'_>,
    mut score: impl FnMut(&Mlp, Which) -> Result<(Value, String)>,
) -> Result<()> {
    let sa = r.solver;
    if sa.backend == BackendChoice::Gpu {
        bail!("invalid --backend = gpu with --method imp: the IMP baseline runs on the CPU in this build");
    }
    sa.refuse_f64("--method imp")?;
    if sa.checkpoint.is_some() {
        bail!("invalid --checkpoint with --method imp: checkpoints cover IHT fits");
    }
    let budgets = sa.imp_budgets.clone().unwrap_or_else(|| vec![r.config.s]);
    let cfg = ImpConfig {
        hidden_layers: sa.layers,
        m: r.m,
        k: r.k,
        epochs: r.config.steps,
        batch_size: r.config.batch_size,
        seed: r.config.seed,
        lr: sa.lr as f64,
        loss: r.loss,
        prune_fraction: 0.1,
        retrain: sa.imp_retrain,
    };
    let bar = super::report::progress(0, sa.quiet);
    let start = std::time::Instant::now();
    let result = imp(r.data, r.targets, &cfg, &budgets, |round| {
        bar.set_message(format!(
            "IMP round {}: {} weights trained, loss {:.4e}",
            round.round, round.trained, round.train_loss
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let (dense, dense_line) = score(&result.dense, Which::Dense)?;
    let losses: Vec<f64> = result.rounds.iter().map(|x| x.train_loss).collect();
    if !sa.json {
        println!(
            "IMP ({} hidden layer(s), m = {}): dense network of {} weights: {dense_line}; {} rounds in {seconds:.2} s",
            sa.layers,
            r.m,
            result.dense.params(),
            result.rounds.len()
        );
    }
    for (i, pick) in result.picks.iter().enumerate() {
        let (fields, line) = score(&pick.pruned, Which::Pruned(i))?;
        let retrained = match &pick.retrained {
            Some(model) => Some(score(model, Which::Retrained(i))?),
            None => None,
        };
        let mut extra = r.extra.clone();
        merge(&mut extra, fields);
        merge(
            &mut extra,
            json!({
                "round": pick.round,
                "params": result.dense.params(),
                "dense": dense,
                "retrained": retrained.as_ref().map(|x| x.0.clone()),
                "train_loss_per_round": losses,
                "epochs_per_round": cfg.epochs,
                "lr": cfg.lr,
            }),
        );
        let record = RunRecord {
            task: r.task,
            method: "imp",
            backend: "cpu".into(),
            n: r.data.n(),
            d: r.data.d(),
            m: r.m,
            s: pick.budget,
            k: r.k,
            layers: sa.layers,
            steps: cfg.epochs * (pick.round + 1 + retrained.is_some() as usize),
            seed: cfg.seed,
            nnz: pick.kept,
            seconds,
            peak_host_bytes: peak_host_bytes(),
            peak_device_bytes: 0,
            extra,
        };
        if sa.json {
            record.print()?;
        } else {
            println!(
                "s = {}: round {}, {} weights kept: {line}{}",
                pick.budget,
                pick.round,
                pick.kept,
                retrained.map_or(String::new(), |x| format!(
                    "; retrained at this mask: {}",
                    x.1
                ))
            );
        }
    }
    Ok(())
}
