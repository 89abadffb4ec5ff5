//! MNIST (SPEC §4): the IDX reader and the paper's split. The reader checks everything before
//! trusting a byte (magic, element type, dimensions, a size product that must not overflow and
//! must equal the payload's length), and every error names the file.
//!
//! The split follows the paper: the official training file then the test file form one sequence of
//! 70 000 digits; for each class, in that order, the first `train` images are for training and the
//! next `test` for testing; rows are grouped by class. Pixels stay raw 0–255 (as f32).

use crate::error::{Error, Result};
use crate::problem::model::argmax_rows;
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
    let (dims, header) = parse_header(bytes, bytes.len() as u64, name)?;
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Checks an IDX header (the first bytes of a file of `file_len` bytes): magic, element type,
/// dimensions, a size product that does not overflow and equals the payload. Returns the
/// dimensions and the header's length.
fn parse_header(bytes: &[u8], file_len: u64, name: &str) -> Result<(Vec<usize>, usize)> {
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
    let payload = file_len - header as u64;
    if payload != total as u64 {
        return Err(bad(
            name,
            format!("IDX dimensions {dims:?} need {total} bytes of data, the file has {payload}"),
        ));
    }
    Ok((dims, header))
}

/// Reads the images `rows` (ascending) of an IDX image file, `d` bytes each, without loading the
/// rest: the header and the file's length are checked as [`parse_idx`] does.
fn read_idx_rows(path: &Path, rows: &[usize]) -> Result<(Vec<usize>, Vec<u8>)> {
    use std::io::{BufReader, Read, Seek, SeekFrom};
    let name = path.display().to_string();
    let io = |source| Error::Io {
        path: format!("{name} (fetch the data with scripts/fetch-data.sh)"),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut rd = BufReader::new(file);
    let mut head = [0u8; 4 + 4 * 255];
    let want = (len as usize).min(head.len());
    rd.read_exact(&mut head[..want]).map_err(io)?;
    let nd = if want >= 4 { head[3] as usize } else { 0 };
    let (dims, header) = parse_header(&head[..want.min(4 + 4 * nd.max(1))], len, &name)?;
    if dims.len() != 3 {
        return Err(bad(
            &name,
            format!("IDX images need 3 dimensions, got {dims:?}"),
        ));
    }
    let d = dims[1] * dims[2];
    let mut out = vec![0u8; rows.len() * d];
    for (k, &r) in rows.iter().enumerate() {
        if r >= dims[0] {
            return Err(bad(
                &name,
                format!("image {r} is past the file's {}", dims[0]),
            ));
        }
        rd.seek(SeekFrom::Start((header + r * d) as u64))
            .map_err(io)?;
        rd.read_exact(&mut out[k * d..(k + 1) * d]).map_err(io)?;
    }
    Ok((dims, out))
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

/// Images (row-major, `d` raw 0–255 pixel values per image) with their labels.
#[derive(Clone, Debug, Default)]
pub struct Labeled {
    pub d: usize,
    pub x: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Labeled {
    /// The images as a data set (column-major f32 pixels, multiplied by `scale`) with targets `y`.
    pub fn to_data(&self, scale: f32, y: Vec<f32>) -> Result<crate::problem::data::Data> {
        let (n, d) = (self.len(), self.d);
        let mut xt = vec![0.0f32; n * d];
        for (r, img) in self.x.chunks(d.max(1)).enumerate() {
            for (i, &p) in img.iter().enumerate() {
                xt[i * n + r] = p as f32 * scale;
            }
        }
        crate::problem::data::Data::from_columns(n, d, xt, y)
    }

    /// One-hot rows (n × k) of the labels.
    pub fn one_hot(&self, k: usize) -> Vec<f32> {
        self.labels
            .iter()
            .flat_map(|&l| (0..k).map(move |c| if c == l as usize { 1.0 } else { 0.0 }))
            .collect()
    }

    /// Pixels of image `k` as f32 (raw 0–255).
    pub fn image(&self, k: usize) -> Vec<f32> {
        self.x[k * self.d..(k + 1) * self.d]
            .iter()
            .map(|&p| p as f32)
            .collect()
    }

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
    let (tr_y, te_y) = (
        read_idx(&dir.join("train-labels-idx1-ubyte"))?,
        read_idx(&dir.join("t10k-labels-idx1-ubyte"))?,
    );
    for (y, name) in [
        (&tr_y, "train-labels-idx1-ubyte"),
        (&te_y, "t10k-labels-idx1-ubyte"),
    ] {
        if y.dims.len() != 1 {
            return Err(bad(
                &dir.join(name).display().to_string(),
                format!("labels need 1 dimension, got {:?}", y.dims),
            ));
        }
    }
    // The combined sequence: official training images, then official test images. Per class,
    // the first `train` go to training and the next `test` to testing; only those are read.
    let labels: Vec<u8> = tr_y.data.iter().chain(&te_y.data).copied().collect();
    let n_train_file = tr_y.data.len();
    let mut picks: Vec<(usize, u8, bool)> = Vec::new(); // (sequence index, class, is_train)
    for &c in classes {
        let of_class: Vec<usize> = (0..labels.len()).filter(|&k| labels[k] == c).collect();
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
        for (k, &idx) in of_class.iter().take(train + test).enumerate() {
            picks.push((idx, c, k < train));
        }
    }
    let mut from_train: Vec<usize> = picks
        .iter()
        .map(|p| p.0)
        .filter(|&i| i < n_train_file)
        .collect();
    let mut from_test: Vec<usize> = picks
        .iter()
        .map(|p| p.0)
        .filter(|&i| i >= n_train_file)
        .map(|i| i - n_train_file)
        .collect();
    from_train.sort_unstable();
    from_test.sort_unstable();
    let tr_path = dir.join("train-images-idx3-ubyte");
    let te_path = dir.join("t10k-images-idx3-ubyte");
    let (tr_dims, tr_px) = read_idx_rows(&tr_path, &from_train)?;
    let (te_dims, te_px) = read_idx_rows(&te_path, &from_test)?;
    for (dims, y, path) in [(&tr_dims, &tr_y, &tr_path), (&te_dims, &te_y, &te_path)] {
        if dims[0] != y.dims[0] {
            return Err(bad(
                &path.display().to_string(),
                format!("images {dims:?} and labels {:?} do not pair up", y.dims),
            ));
        }
    }
    let d = tr_dims[1] * tr_dims[2];
    if te_dims[1] * te_dims[2] != d {
        return Err(bad(
            &dir.display().to_string(),
            format!(
                "train images have {d} pixels, test {}",
                te_dims[1] * te_dims[2]
            ),
        ));
    }
    let pixels = |idx: usize| -> &[u8] {
        if idx < n_train_file {
            let k = from_train.binary_search(&idx).expect("picked");
            &tr_px[k * d..(k + 1) * d]
        } else {
            let k = from_test
                .binary_search(&(idx - n_train_file))
                .expect("picked");
            &te_px[k * d..(k + 1) * d]
        }
    };
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
    for &(idx, c, is_train) in &picks {
        let dst = if is_train { &mut tr } else { &mut te };
        dst.x.extend_from_slice(pixels(idx));
        dst.labels.push(c);
    }
    Ok((tr, te))
}

/// Fraction of rows of `yhat` (n × k row-major) whose largest output is the label.
pub fn class_accuracy(yhat: &[f32], labels: &[u8], k: usize) -> f64 {
    let pred = argmax_rows(yhat, k);
    let hits = pred
        .iter()
        .zip(labels)
        .filter(|(&p, &l)| p == l as usize)
        .count();
    hits as f64 / labels.len().max(1) as f64
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
