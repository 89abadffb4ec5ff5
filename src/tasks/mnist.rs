//! MNIST (SPEC §4): the IDX reader and the paper's split. The reader checks everything before
//! trusting a byte (magic, element type, dimensions, a size product that must not overflow and
//! must equal the payload's length), and every error names the file.
//!
//! The split follows the paper: the official training file then the test file form one sequence of
//! 70 000 digits; for each class, in that order, the first `train` images are for training and the
//! next `test` for testing; rows are grouped by class. Pixels stay raw 0–255 (as f32).

use crate::error::{Error, Result};
use std::path::Path;

/// A parsed IDX file of unsigned bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

fn bad(path: &str, why: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_string(),
        why: why.into(),
    }
}

/// Parses IDX bytes (`name` is used in errors).
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<Idx> {
    if bytes.len() < 4 {
        return Err(bad(
            name,
            format!("{} bytes is too short for an IDX header", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(
            name,
            format!(
                "bad IDX magic {:02x} {:02x} (expected 00 00)",
                bytes[0], bytes[1]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(bad(
            name,
            format!(
                "IDX element type 0x{:02x} is not unsigned bytes (0x08)",
                bytes[2]
            ),
        ));
    }
    let nd = bytes[3] as usize;
    if nd == 0 {
        return Err(bad(name, "IDX file declares zero dimensions"));
    }
    let header = 4 + 4 * nd;
    if bytes.len() < header {
        return Err(bad(
            name,
            format!("truncated IDX header: {} bytes, need {header}", bytes.len()),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let total = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(name, format!("IDX dimensions {dims:?} overflow")))?;
    let payload = bytes.len() - header;
    if payload != total {
        return Err(bad(
            name,
            format!("IDX dimensions {dims:?} need {total} bytes of data, the file has {payload}"),
        ));
    }
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads and parses an IDX file.
pub fn read_idx(path: &Path) -> Result<Idx> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: format!("{name} (fetch the data with scripts/fetch-data.sh)"),
        source,
    })?;
    parse_idx(&bytes, &name)
}

/// Images (row-major, `d` raw pixel values per image) with their labels.
#[derive(Clone, Debug, Default)]
pub struct Labeled {
    pub d: usize,
    pub x: Vec<f32>,
    pub labels: Vec<u8>,
}

impl Labeled {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The paper's split of `classes` from the four files in `dir`.
pub fn load_split(
    dir: &Path,
    classes: &[u8],
    train: usize,
    test: usize,
) -> Result<(Labeled, Labeled)> {
    let images = |f: &str| read_idx(&dir.join(f));
    let (tr_x, tr_y) = (
        images("train-images-idx3-ubyte")?,
        images("train-labels-idx1-ubyte")?,
    );
    let (te_x, te_y) = (
        images("t10k-images-idx3-ubyte")?,
        images("t10k-labels-idx1-ubyte")?,
    );
    let pair = |x: &Idx, y: &Idx, name: &str| -> Result<usize> {
        if x.dims.len() != 3 || y.dims.len() != 1 || x.dims[0] != y.dims[0] {
            return Err(bad(
                &dir.join(name).display().to_string(),
                format!("images {:?} and labels {:?} do not pair up", x.dims, y.dims),
            ));
        }
        Ok(x.dims[1] * x.dims[2])
    };
    let d = pair(&tr_x, &tr_y, "train-images-idx3-ubyte")?;
    let d_test = pair(&te_x, &te_y, "t10k-images-idx3-ubyte")?;
    if d != d_test {
        return Err(bad(
            &dir.display().to_string(),
            format!("train images have {d} pixels, test {d_test}"),
        ));
    }
    // The combined sequence: official training images, then official test images.
    let all: Vec<(&[u8], u8)> = tr_x
        .data
        .chunks(d)
        .zip(&tr_y.data)
        .chain(te_x.data.chunks(d).zip(&te_y.data))
        .map(|(img, &l)| (img, l))
        .collect();
    let (mut tr, mut te) = (
        Labeled {
            d,
            ..Default::default()
        },
        Labeled {
            d,
            ..Default::default()
        },
    );
    for &c in classes {
        let of_class: Vec<&[u8]> = all.iter().filter(|p| p.1 == c).map(|p| p.0).collect();
        if of_class.len() < train + test {
            return Err(Error::invalid(
                "digit",
                c,
                format!(
                    "has {} images, the split needs {}",
                    of_class.len(),
                    train + test
                ),
            ));
        }
        for (k, img) in of_class.iter().take(train + test).enumerate() {
            let dst = if k < train { &mut tr } else { &mut te };
            dst.x.extend(img.iter().map(|&p| p as f32));
            dst.labels.push(c);
        }
    }
    Ok((tr, te))
}

/// Fraction of `pred ≥ 0.5` that agree with `labels == positive`.
pub fn binary_accuracy(pred: &[f32], labels: &[u8], positive: u8) -> f64 {
    let hits = pred
        .iter()
        .zip(labels)
        .filter(|(&p, &l)| (p >= 0.5) == (l == positive))
        .count();
    hits as f64 / labels.len().max(1) as f64
}
