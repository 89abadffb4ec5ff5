//! The user's data in and the fitted network out: NumPy `.npy` arrays ([`npy`]), CSV tables with
//! a header ([`table`]), and the safetensors model file ([`model_file`]). Depends on
//! [`crate::problem`] (the data set and the network) and [`crate::atomic`] (every write).
//!
//! Invariants: a file's format is decided by its content (the `.npy` magic) and its extension,
//! never guessed from a failed parse; every error names the file, and the row and column where
//! they apply; inputs are checked finite before they become a [`Data`].

pub mod model_file;
pub mod npy;
pub mod table;

use crate::error::{Error, Result};
use crate::problem::data::Data;
use std::path::Path;

/// A 1-D (`cols = None`) or 2-D array of values.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix<T> {
    pub rows: usize,
    pub cols: Option<usize>,
    /// Whether `values` are column by column (a Fortran-order `.npy`); else row by row.
    pub column_major: bool,
    pub values: Vec<T>,
    /// Whether the values came from an integer type.
    pub integer: bool,
}

impl<T: Copy> Matrix<T> {
    /// Columns (1 for a 1-D array).
    pub fn width(&self) -> usize {
        self.cols.unwrap_or(1)
    }

    /// Entry (r, c).
    pub fn at(&self, r: usize, c: usize) -> T {
        if self.column_major {
            self.values[c * self.rows + r]
        } else {
            self.values[r * self.width() + c]
        }
    }

    /// The values row by row.
    pub fn into_row_major(self) -> Vec<T> {
        if !self.column_major {
            return self.values;
        }
        let (n, k) = (self.rows, self.width());
        (0..n * k).map(|e| self.at(e / k, e % k)).collect()
    }

    /// The values column by column.
    pub fn into_column_major(self) -> Vec<T> {
        if self.column_major || self.width() == 1 {
            return self.values;
        }
        let (n, k) = (self.rows, self.width());
        (0..n * k).map(|e| self.at(e % n, e / n)).collect()
    }
}

/// The file formats data comes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Npy,
    Csv,
}

impl Format {
    /// `.npy` by its magic bytes (or a `.npy` name, so a broken one is reported as such), CSV by
    /// a `.csv` or `.txt` name; anything else is refused with a one-line error.
    pub fn of(what: &'static str, path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if npy::sniff(path) || ext.as_deref() == Some("npy") {
            return Ok(Self::Npy);
        }
        if matches!(ext.as_deref(), Some("csv" | "txt")) {
            return Ok(Self::Csv);
        }
        Err(Error::invalid(
            what,
            path.display(),
            "unknown format: a NumPy .npy array or a .csv table with a header",
        ))
    }
}

/// The inputs of a data set: `n` rows of `d` features, column-major, with the column names when
/// they came from a CSV header.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub n: usize,
    pub d: usize,
    pub xt: Vec<f32>,
    pub columns: Option<Vec<String>>,
}

/// Targets: `n` rows of `k` values, row-major (`k = 1` and `vector = false` for a 1-D array).
#[derive(Clone, Debug)]
pub struct Targets {
    pub n: usize,
    pub k: usize,
    pub values: Vec<f64>,
    /// Whether the file held a 2-D array (even with one column).
    pub matrix: bool,
}

/// Reads the inputs `X` (`.npy` of shape (n, d), or a CSV whose columns are the features) and,
/// for a CSV, the `target` column out of it. `select`: take exactly these CSV columns, in order
/// (a model's feature names). Values must be finite.
pub fn read_inputs(
    path: &Path,
    target: Option<&str>,
    select: Option<&[String]>,
) -> Result<(Inputs, Option<Targets>)> {
    let format = Format::of("input", path)?;
    if format == Format::Npy {
        if let Some(t) = target {
            return Err(Error::invalid(
                "target",
                t,
                format!(
                    "names a CSV column, and {} is a .npy array (pass the targets as their own file)",
                    path.display()
                ),
            ));
        }
        let m = npy::read::<f32>(path)?;
        let Some(d) = m.cols else {
            return Err(Error::Format {
                path: path.display().to_string(),
                why: format!(
                    "X must be 2-D (n rows × d features), got shape ({},)",
                    m.rows
                ),
            });
        };
        let n = m.rows;
        check_rows_finite(path, &m)?;
        let xt = m.into_column_major();
        return Ok((
            Inputs {
                n,
                d,
                xt,
                columns: None,
            },
            None,
        ));
    }
    let t = table::read(path, target, select)?;
    Ok((
        Inputs {
            n: t.n,
            d: t.columns.len(),
            xt: t.xt,
            columns: Some(t.columns),
        },
        t.target.map(|values| Targets {
            n: values.len(),
            k: 1,
            values,
            matrix: false,
        }),
    ))
}

/// Reads targets `y`: a `.npy` of shape (n,) or (n, k), or a CSV whose every column is a target.
pub fn read_targets(path: &Path) -> Result<Targets> {
    match Format::of("targets", path)? {
        Format::Npy => {
            let m = npy::read::<f64>(path)?;
            check_rows_finite(path, &m)?;
            let (n, k, matrix) = (m.rows, m.width(), m.cols.is_some());
            Ok(Targets {
                n,
                k,
                values: m.into_row_major(),
                matrix,
            })
        }
        Format::Csv => {
            let t = table::read(path, None, None)?;
            let k = t.columns.len();
            let values = (0..t.n * k)
                .map(|e| t.xt[(e % k) * t.n + e / k] as f64)
                .collect();
            Ok(Targets {
                n: t.n,
                k,
                values,
                matrix: k > 1,
            })
        }
    }
}

/// Finite values only, naming the first bad one's row and column.
fn check_rows_finite<T: Copy + Into<f64>>(path: &Path, m: &Matrix<T>) -> Result<()> {
    let Some(e) = m.values.iter().position(|&v| !v.into().is_finite()) else {
        return Ok(());
    };
    let (r, c) = if m.column_major {
        (e % m.rows.max(1), e / m.rows.max(1))
    } else {
        (e / m.width(), e % m.width())
    };
    Err(Error::Format {
        path: path.display().to_string(),
        why: format!(
            "non-finite value {} at row {r}, column {c}",
            m.values[e].into()
        ),
    })
}

/// A data set of `inputs` with scalar targets `y` (zeros when the targets are a matrix the
/// vector model reads separately).
pub fn to_data(inputs: Inputs, y: Vec<f32>) -> Result<Data> {
    Data::from_columns(inputs.n, inputs.d, inputs.xt, y)
}
