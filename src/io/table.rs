//! CSV tables with a header line, through the `csv` crate: every selected column numeric and
//! finite, one column optionally split off as the target.
//!
//! Invariants: the header is required and its names unique (a first line of numbers is refused,
//! not taken as data); every error names the file, the line and the column; values are parsed as
//! f64 and checked finite before they are narrowed.

use crate::error::{Error, Result};
use std::path::Path;

/// Feature columns (column-major) and an optional target column.
#[derive(Clone, Debug)]
pub struct Table {
    pub n: usize,
    pub columns: Vec<String>,
    pub xt: Vec<f32>,
    pub target: Option<Vec<f64>>,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// A short list of names for messages.
fn list(names: &[String]) -> String {
    let mut out = names
        .iter()
        .take(8)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 8 {
        out.push_str(&format!(", … ({} in all)", names.len()));
    }
    out
}

/// Reads `path`: the features are `select` (those columns, in that order) or every column but
/// `target`; `target` is split off as the targets.
pub fn read(path: &Path, target: Option<&str>, select: Option<&[String]>) -> Result<Table> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(std::io::BufReader::new(file), path, target, select)
}

/// Parses CSV from any reader (`path` names it in errors).
pub fn parse(
    input: impl std::io::Read,
    path: &Path,
    target: Option<&str>,
    select: Option<&[String]>,
) -> Result<Table> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(path, e, 0))?
        .iter()
        .map(str::to_string)
        .collect();
    if header.is_empty() || header.iter().all(String::is_empty) {
        return Err(bad(
            path,
            "empty file: a header line of column names is required",
        ));
    }
    if let Some(c) = header.iter().position(|h| h.parse::<f64>().is_ok()) {
        return Err(bad(
            path,
            format!(
                "line 1 must be a header of column names; column {} is the number '{}'",
                c + 1,
                header[c]
            ),
        ));
    }
    for (i, h) in header.iter().enumerate() {
        if h.is_empty() {
            return Err(bad(path, format!("column {} has an empty name", i + 1)));
        }
        if header[..i].contains(h) {
            return Err(bad(path, format!("column name '{h}' appears twice")));
        }
    }
    let find = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            bad(
                path,
                format!("no column '{name}' (columns: {})", list(&header)),
            )
        })
    };
    let target_col = target.map(find).transpose()?;
    let features: Vec<usize> = match select {
        Some(names) => names.iter().map(|n| find(n)).collect::<Result<_>>()?,
        None => (0..header.len())
            .filter(|&c| Some(c) != target_col)
            .collect(),
    };
    if features.is_empty() {
        return Err(bad(path, "no feature columns besides the target"));
    }
    let mut cols: Vec<Vec<f32>> = vec![Vec::new(); features.len()];
    let mut y = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, e, header.len())),
        }
        let line = record.position().map_or(0, |p| p.line());
        let value = |c: usize| -> Result<f64> {
            let field = record.get(c).unwrap_or("");
            let v: f64 = field.parse().map_err(|_| {
                bad(
                    path,
                    format!(
                        "line {line}, column '{}': '{field}' is not a number",
                        header[c]
                    ),
                )
            })?;
            if !v.is_finite() || v.abs() > f32::MAX as f64 {
                return Err(bad(
                    path,
                    format!(
                        "line {line}, column '{}': non-finite value {field}",
                        header[c]
                    ),
                ));
            }
            Ok(v)
        };
        for (col, &c) in cols.iter_mut().zip(&features) {
            col.push(value(c)? as f32);
        }
        if let Some(t) = target_col {
            y.push(value(t)?);
        }
    }
    let n = cols[0].len();
    if n == 0 {
        return Err(bad(path, "no data rows after the header"));
    }
    Ok(Table {
        n,
        columns: features.iter().map(|&c| header[c].clone()).collect(),
        xt: cols.concat(),
        target: target_col.map(|_| y),
    })
}

/// The csv crate's error on one line, a ragged row said in the table's terms.
fn csv_error(path: &Path, e: csv::Error, width: usize) -> Error {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { pos, len, .. } => bad(
            path,
            format!(
                "line {} has {len} fields where the header has {width}",
                pos.as_ref().map_or(0, |p| p.line())
            ),
        ),
        _ => bad(path, e.to_string().replace('\n', " ")),
    }
}

/// CSV bytes of `n` rows under `header`, `values` row-major, each written as the shortest text
/// that reads back to the same f32 (integers as integers).
pub fn encode(header: &[String], values: &[f64]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| Error::invalid("csv", "output", e);
    w.write_record(header).map_err(fail)?;
    for row in values.chunks(header.len().max(1)) {
        w.write_record(row.iter().map(|v| {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", *v as i64)
            } else {
                format!("{}", *v as f32)
            }
        }))
        .map_err(fail)?;
    }
    w.into_inner()
        .map_err(|e| Error::invalid("csv", "output", e.error()))
}
