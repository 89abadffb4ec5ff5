//! The sweep's results: one CSV row per finished run, appended as soon as it finishes and read back
//! to skip finished cells; and one run, a subprocess of this binary with `--json`.

use super::args::{Method, Task};
use super::plan::metric_of;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

/// One finished run, as a CSV row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub task: Task,
    pub method: Method,
    pub teacher: String,
    pub layers: usize,
    pub n: usize,
    pub m: usize,
    pub s: usize,
    pub seed: u64,
    /// "psnr" or "accuracy".
    pub metric: String,
    pub value: f64,
    /// Planted only: the matched weight error (empty otherwise).
    pub weight_error: Option<f64>,
    pub nnz: usize,
    pub steps: usize,
    pub seconds: f64,
    pub peak_host_bytes: u64,
    pub peak_device_bytes: u64,
    pub backend: String,
}

pub(super) type Key = (Task, Method, String, usize, usize, usize, usize, u64);

impl Row {
    pub(super) fn key(&self) -> Key {
        (
            self.task,
            self.method,
            self.teacher.clone(),
            self.layers,
            self.n,
            self.m,
            self.s,
            self.seed,
        )
    }
}

/// Reads the rows already in `path` (none when it does not exist or is empty). A torn last line
/// (a run killed mid-append) is dropped with a warning and cut from the file, so its cell reruns
/// and later appends start on a fresh line; any other row that does not parse (a foreign file) is
/// an error naming the file and the line, before any run starts.
pub(super) fn read_rows(path: &Path) -> Result<Vec<Row>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let complete = if text.ends_with('\n') {
        text.len()
    } else {
        text.rfind('\n').map_or(0, |i| i + 1)
    };
    if complete < text.len() || text.trim().is_empty() {
        if !text.trim().is_empty() {
            eprintln!(
                "sweep: dropping the torn last line of {} (its cell reruns)",
                path.display()
            );
        }
        let keep = if text.trim().is_empty() { 0 } else { complete };
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(keep as u64))
            .with_context(|| format!("cannot repair {}", path.display()))?;
    }
    parse_rows(&text[..complete], path)
}

/// The rows of CSV `text` read from `path` (named in errors).
fn parse_rows(text: &str, path: &Path) -> Result<Vec<Row>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    rd.deserialize()
        .enumerate()
        .map(|(k, r)| {
            r.with_context(|| {
                format!(
                    "invalid CSV {}: line {} is not a sweep row",
                    path.display(),
                    k + 2
                )
            })
        })
        .collect()
}

/// Appends rows to the CSV (header when new), flushed per call: a killed sweep keeps every
/// finished run.
pub(super) fn append_rows(path: &Path, rows: &[Row]) -> Result<()> {
    let new = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut w = csv::WriterBuilder::new().has_headers(new).from_writer(file);
    for r in rows {
        w.serialize(r)?;
    }
    // On the disk, not only in the page cache: a crash keeps every finished run.
    let file = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("{}", e.error()))?;
    file.sync_data()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// One subprocess: this binary with `args`, returning its JSON lines.
pub(super) fn run_cell(args: &[String]) -> Result<Vec<serde_json::Value>> {
    let exe = std::env::current_exe().context("cannot locate the relu-iht binary")?;
    let out = Command::new(exe)
        .args(args)
        .output()
        .context("cannot start a run")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "run `relu-iht {}` failed: {}",
            args.join(" "),
            err.lines().last().unwrap_or("no message")
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).context("a run printed invalid JSON"))
        .collect()
}

pub(super) fn row_from(
    task: Task,
    method: Method,
    teacher: &str,
    retrained: bool,
    v: &serde_json::Value,
) -> Result<Row> {
    let u = |k: &str| {
        v[k].as_u64()
            .with_context(|| format!("run record lacks {k}: {v}"))
    };
    let metric = metric_of(task);
    // IMP with --imp-retrain: the retrained model's score.
    let scored = if retrained && method == Method::Imp {
        &v["retrained"]
    } else {
        v
    };
    Ok(Row {
        task,
        method,
        teacher: teacher.to_string(),
        layers: u("layers")? as usize,
        n: u("n")? as usize,
        m: u("m")? as usize,
        s: u("s")? as usize,
        seed: u("seed")?,
        metric: metric.to_string(),
        value: match scored[metric].as_f64() {
            Some(x) => x,
            // JSON has no infinity: an exact fit (zero error) prints its PSNR as null.
            None if metric == "psnr" && scored["rel_error"].as_f64() == Some(0.0) => f64::INFINITY,
            None => bail!("run record lacks {metric}: {v}"),
        },
        weight_error: v["weight_error"].as_f64(),
        nnz: u("nnz")? as usize,
        steps: u("steps")? as usize,
        seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
        peak_host_bytes: u("peak_host_bytes")?,
        peak_device_bytes: u("peak_device_bytes")?,
        backend: v["backend"].as_str().unwrap_or("").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The sweep CSV parser against 10⁵ random and mutated inputs from a fixed seed: each is
    /// parsed or refused with an error, none panics.
    #[test]
    fn csv_parsing_never_panics() {
        let valid = "task,method,teacher,layers,n,m,s,seed,metric,value,weight_error,nnz,steps,seconds,peak_host_bytes,peak_device_bytes,backend\n\
                     planted,iht,relu,1,300,3,4,0,psnr,31.5,0.2,4,15,0.01,1000,0,cpu\n";
        let path = Path::new("fuzz.csv");
        assert_eq!(parse_rows(valid, path).unwrap().len(), 1);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(53);
        let mut parsed = 0;
        for k in 0..100_000 {
            let bytes: Vec<u8> = if k % 2 == 0 {
                let len = rng.random_range(0..200);
                (0..len).map(|_| rng.random_range(b' '..=b'~')).collect()
            } else {
                let mut v = valid.as_bytes().to_vec();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..v.len().max(1));
                    match rng.random_range(0..3) {
                        0 if !v.is_empty() => v[at] = rng.random_range(b' '..=b'~'),
                        1 => v.truncate(at),
                        _ => v.insert(at.min(v.len()), b','),
                    }
                }
                v
            };
            let text = String::from_utf8_lossy(&bytes);
            let r = std::panic::catch_unwind(|| parse_rows(&text, path).is_ok());
            parsed += r.unwrap_or_else(|_| panic!("input {k} panicked: {text:?}")) as usize;
        }
        assert!(parsed > 0 && parsed < 100_000, "{parsed}");
    }
}
