//! NumPy `.npy` arrays in and out, through the `npyz` crate: float (f32, f64) and integer arrays
//! of one or two dimensions, C or Fortran order, either endianness.
//!
//! Invariants: the size the header declares is checked against the file's length and the memory
//! available before any value is read (a forged header cannot make us allocate), every failure is
//! an [`Error::Format`] naming the file, and values come back as a [`Matrix`] with its layout, so
//! a Fortran-order X is used column by column without a transpose.

use crate::error::{Error, Result};
use crate::io::Matrix;
use npyz::{TypeChar, WriterBuilder};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The first bytes of every `.npy` file.
pub const MAGIC: &[u8] = b"\x93NUMPY";

fn bad(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// An element type arrays are read as.
pub trait Elem: Copy + Send + 'static {
    fn from_f32(v: f32) -> Self;
    fn from_f64(v: f64) -> Self;
}

impl Elem for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Elem for f64 {
    fn from_f32(v: f32) -> Self {
        v as f64
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// Reads a 1-D or 2-D numeric array as `T` values (through f64 for integers: exact up to 2⁵³).
pub fn read<T: Elem>(path: &Path) -> Result<Matrix<T>> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    parse(std::io::BufReader::new(file), len, path)
}

/// Parses `.npy` bytes (`path` names them in errors).
pub fn parse_bytes<T: Elem>(bytes: &[u8], path: &Path) -> Result<Matrix<T>> {
    parse(std::io::Cursor::new(bytes), bytes.len() as u64, path)
}

/// Parses a `.npy` stream of `len` bytes.
fn parse<T: Elem, R: Read + Seek>(mut reader: R, len: u64, path: &Path) -> Result<Matrix<T>> {
    let mut head = [0u8; 6];
    if reader.read_exact(&mut head).is_err() || head != MAGIC {
        return Err(bad(path, "not a .npy file (no \\x93NUMPY magic)"));
    }
    reader.seek(SeekFrom::Start(0)).map_err(|e| bad(path, e))?;
    let file = npyz::NpyFile::new(&mut reader)
        .map_err(|e| bad(path, format!("malformed .npy header: {e}")))?;
    let header = file.header();
    let shape: Vec<usize> = header.shape().iter().map(|&v| v as usize).collect();
    let (rows, cols) = match *shape.as_slice() {
        [n] => (n, None),
        [n, k] => (n, Some(k)),
        _ => {
            return Err(bad(
                path,
                format!("arrays of shape {shape:?} are not supported (1-D or 2-D)"),
            ))
        }
    };
    let npyz::DType::Plain(ty) = header.dtype() else {
        return Err(bad(
            path,
            "structured arrays are not supported (a plain float or integer array)",
        ));
    };
    let size = ty.size_field() as usize;
    let numeric = match ty.type_char() {
        TypeChar::Float => matches!(size, 4 | 8),
        TypeChar::Int | TypeChar::Uint => matches!(size, 1 | 2 | 4 | 8),
        _ => false,
    };
    if !numeric {
        return Err(bad(
            path,
            format!("dtype '{ty}' is not supported (float32, float64 or an integer type)"),
        ));
    }
    let count = shape
        .iter()
        .try_fold(1u128, |acc, &v| acc.checked_mul(v as u128))
        .unwrap_or(u128::MAX);
    let need = count.saturating_mul(size as u128);
    // What is left after the header is the data; a shorter file is truncated.
    let header = header.clone();
    drop(file);
    let at = reader.stream_position().map_err(|e| bad(path, e))?;
    let left = len.saturating_sub(at);
    if need > left as u128 {
        return Err(bad(
            path,
            format!(
                "truncated: shape {shape:?} of '{ty}' needs {need} bytes of data, the file has {left}"
            ),
        ));
    }
    crate::mem::check_fits(
        "array",
        path.display(),
        count.saturating_mul(size.max(std::mem::size_of::<T>()) as u128),
    )?;
    let fortran = header.order() == npyz::Order::Fortran;
    let read_err = |e: std::io::Error| bad(path, format!("cannot read the values: {e}"));
    let file = npyz::NpyFile::with_header(header, reader);
    let values: Vec<T> = match (ty.type_char(), size) {
        (TypeChar::Float, 4) => file
            .into_vec::<f32>()
            .map_err(read_err)?
            .into_iter()
            .map(T::from_f32)
            .collect(),
        (TypeChar::Float, _) => file
            .into_vec::<f64>()
            .map_err(read_err)?
            .into_iter()
            .map(T::from_f64)
            .collect(),
        (TypeChar::Int, 1) => convert(file.into_vec::<i8>(), read_err)?,
        (TypeChar::Int, 2) => convert(file.into_vec::<i16>(), read_err)?,
        (TypeChar::Int, 4) => convert(file.into_vec::<i32>(), read_err)?,
        (TypeChar::Int, _) => file
            .into_vec::<i64>()
            .map_err(read_err)?
            .into_iter()
            .map(|v| T::from_f64(v as f64))
            .collect(),
        (_, 1) => convert(file.into_vec::<u8>(), read_err)?,
        (_, 2) => convert(file.into_vec::<u16>(), read_err)?,
        (_, 4) => convert(file.into_vec::<u32>(), read_err)?,
        (_, _) => file
            .into_vec::<u64>()
            .map_err(read_err)?
            .into_iter()
            .map(|v| T::from_f64(v as f64))
            .collect(),
    };
    Ok(Matrix {
        rows,
        cols,
        column_major: fortran && cols.is_some(),
        values,
        integer: ty.type_char() != TypeChar::Float,
    })
}

fn convert<S: Into<f64>, T: Elem>(
    v: std::io::Result<Vec<S>>,
    err: impl Fn(std::io::Error) -> Error,
) -> Result<Vec<T>> {
    Ok(v.map_err(err)?
        .into_iter()
        .map(|x| T::from_f64(x.into()))
        .collect())
}

/// Whether the file starts with the `.npy` magic (false when it cannot be read).
pub fn sniff(path: &Path) -> bool {
    let mut head = [0u8; 6];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == MAGIC
}

/// `.npy` bytes of `values` with shape `shape` (C order).
pub fn encode<T: npyz::AutoSerialize + Copy>(shape: &[usize], values: &[T]) -> Result<Vec<u8>> {
    let shape: Vec<u64> = shape.iter().map(|&v| v as u64).collect();
    let mut out = Vec::new();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut out)
        .begin_nd()
        .map_err(|e| Error::invalid("npy", "output", e))?;
    writer
        .extend(values.iter().copied())
        .and_then(|_| writer.finish())
        .map_err(|e| Error::invalid("npy", "output", e))?;
    Ok(out)
}

/// Writes `values` with shape `shape` (C order) atomically.
pub fn write<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[usize],
    values: &[T],
) -> Result<()> {
    crate::atomic::write(path, &encode(shape, values)?)
}
