//! The model file: a fitted [`Network`] in safetensors, laid out so that PyTorch's
//! `nn.Sequential(Linear, ReLU, Linear, …)` with `bias=False` loads it by `load_state_dict`.
//!
//! Tensors (all float32): hidden layer `l` is `"{2l}.weight"` (`out × in`), the output layer is
//! `"{2L}.weight"` (`k × m_last`: ±1 for the scalar model (−1: a signed neuron), W2 for the vector model); a gated
//! layer (convex mode: units `1{x·g_j > 0} · x·w_j`) adds `"gate.{2l}.weight"` of the same shape;
//! an INR adds its Fourier frequencies `"inr.B"` (`features/2 × coordinates`). Metadata (strings):
//! `format = relu-iht`, `format_version`, `kind` (regressor, classifier, inr), `model` (mlp or
//! gated), `mode`, `task`, `d`, `k`, `m`, `s`, `layers`, `seed`, `nnz`; `classes` (a JSON list)
//! for classifiers, `columns` (a JSON list) when the inputs were CSV columns, and for INRs
//! `inr_sigma`, `inr_coord_scale`, `inr_width`, `inr_height`, `inr_channels`.
//!
//! Invariant: [`load`] accepts only what [`save`] can write — the format and version, every
//! tensor name, dtype and shape, the metadata's agreement with the tensors, finite values — and
//! fails with a one-line error naming the file, so a loaded model can be evaluated without checks.

use crate::error::{Error, Result};
use crate::problem::network::{Layer, Network};
use crate::problem::operator::Mode;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// The file layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// What the network predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Real outputs (`k` of them).
    Regressor,
    /// Class scores; the prediction is the label of the largest.
    Classifier,
    /// Intensities of an image at Fourier-featured pixel coordinates.
    Inr,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Regressor => "regressor",
            Kind::Classifier => "classifier",
            Kind::Inr => "inr",
        }
    }
}

/// How an INR's inputs are formed from pixel coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct InrMeta {
    /// Frequencies, `half × coords` row-major.
    pub b: Vec<f32>,
    pub half: usize,
    /// 2 (row, column) or 3 (row, column, channel).
    pub coords: usize,
    pub sigma: f32,
    /// Pixel indices are multiplied by this before the features (1: raw indices).
    pub coord_scale: f32,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

/// Everything the file says besides the tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    pub kind: Kind,
    /// The task that fitted it (fit, planted, mnist, inr).
    pub task: String,
    /// `scp` or `convex`.
    pub mode: String,
    pub m: usize,
    pub s: usize,
    pub layers: usize,
    pub seed: u64,
    /// Class labels, in output order (classifiers).
    pub classes: Option<Vec<i64>>,
    /// Input column names (inputs read from CSV).
    pub columns: Option<Vec<String>>,
    pub inr: Option<InrMeta>,
}

impl Meta {
    /// The metadata of a fit by `task` (no class labels, column names or INR yet).
    pub fn new(
        kind: Kind,
        task: &str,
        mode: Mode,
        (m, s, layers, seed): (usize, usize, usize, u64),
    ) -> Self {
        Self {
            kind,
            task: task.into(),
            mode: match mode {
                Mode::SequentialConvex => "scp",
                Mode::Convex => "convex",
            }
            .into(),
            m,
            s,
            layers,
            seed,
            classes: None,
            columns: None,
            inr: None,
        }
    }
}

/// A network with its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub network: Network,
    pub meta: Meta,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The file's bytes.
pub fn encode(model: &Model) -> Result<Vec<u8>> {
    let (net, meta) = (&model.network, &model.meta);
    net.validate("the model to save")?;
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (l, layer) in net.hidden.iter().enumerate() {
        let shape = vec![layer.out, layer.inp];
        owned.push((
            format!("{}.weight", 2 * l),
            shape.clone(),
            le_bytes(&layer.weight),
        ));
        if let Some(g) = &layer.gate {
            owned.push((format!("gate.{}.weight", 2 * l), shape, le_bytes(g)));
        }
    }
    let out = &net.output;
    owned.push((
        format!("{}.weight", 2 * net.hidden.len()),
        vec![out.out, out.inp],
        le_bytes(&out.weight),
    ));
    let mut info: HashMap<String, String> = HashMap::new();
    let mut put = |k: &str, v: String| {
        info.insert(k.to_string(), v);
    };
    put("format", "relu-iht".into());
    put("format_version", FORMAT_VERSION.to_string());
    put("kind", meta.kind.name().into());
    put("model", if net.gated() { "gated" } else { "mlp" }.into());
    put("task", meta.task.clone());
    put("mode", meta.mode.clone());
    put("d", net.d().to_string());
    put("k", net.k().to_string());
    put("m", meta.m.to_string());
    put("s", meta.s.to_string());
    put("layers", meta.layers.to_string());
    put("seed", meta.seed.to_string());
    put("nnz", net.nnz().to_string());
    let json = |v: serde_json::Result<String>| v.map_err(|e| Error::invalid("metadata", "", e));
    if let Some(c) = &meta.classes {
        put("classes", json(serde_json::to_string(c))?);
    }
    if let Some(c) = &meta.columns {
        put("columns", json(serde_json::to_string(c))?);
    }
    if let Some(inr) = &meta.inr {
        owned.push(("inr.B".into(), vec![inr.half, inr.coords], le_bytes(&inr.b)));
        put("inr_sigma", inr.sigma.to_string());
        put("inr_coord_scale", inr.coord_scale.to_string());
        put("inr_width", inr.width.to_string());
        put("inr_height", inr.height.to_string());
        put("inr_channels", inr.channels.to_string());
    }
    let views = owned
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::invalid("tensor", name, e))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(info)).map_err(|e| Error::invalid("model", "file", e))
}

/// Writes the model file atomically.
pub fn save(path: &Path, model: &Model) -> Result<()> {
    crate::atomic::write(path, &encode(model)?)
}

/// Reads and checks a model file.
pub fn load(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    decode(&bytes, path)
}

/// Parses and checks model-file bytes (`path` names them in errors).
pub fn decode(bytes: &[u8], path: &Path) -> Result<Model> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
    let empty = HashMap::new();
    let info = header.metadata().as_ref().unwrap_or(&empty);
    let get = |k: &str| -> Result<&str> {
        info.get(k)
            .map(String::as_str)
            .ok_or_else(|| bad(path, format!("metadata '{k}' is missing")))
    };
    if info.get("format").map(String::as_str) != Some("relu-iht") {
        return Err(bad(
            path,
            "not a relu-iht model (its metadata has no format = relu-iht)",
        ));
    }
    let version: u32 = get("format_version")?
        .parse()
        .map_err(|_| bad(path, "metadata 'format_version' is not a number"))?;
    if version != FORMAT_VERSION {
        return Err(bad(
            path,
            format!("model format version {version}; this build reads version {FORMAT_VERSION}"),
        ));
    }
    let num = |k: &str| -> Result<usize> {
        get(k)?
            .parse()
            .map_err(|_| bad(path, format!("metadata '{k}' is not a whole number")))
    };
    let real = |k: &str| -> Result<f32> {
        let v: f32 = get(k)?
            .parse()
            .map_err(|_| bad(path, format!("metadata '{k}' is not a number")))?;
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(bad(path, format!("metadata '{k}' = {v} must be positive")))
        }
    };
    let kind = match get("kind")? {
        "regressor" => Kind::Regressor,
        "classifier" => Kind::Classifier,
        "inr" => Kind::Inr,
        other => return Err(bad(path, format!("unknown kind '{other}'"))),
    };
    let layers = num("layers")?;
    if layers == 0 || layers > 1024 {
        return Err(bad(
            path,
            format!("metadata 'layers' = {layers} out of range"),
        ));
    }
    let mut seen = 0usize;
    let mut tensor = |name: &str, shape: Option<&[usize]>| -> Result<Option<Layer>> {
        let Ok(view) = st.tensor(name) else {
            return Ok(None);
        };
        seen += 1;
        if view.dtype() != Dtype::F32 {
            return Err(bad(
                path,
                format!("tensor '{name}' is {:?}; float32 expected", view.dtype()),
            ));
        }
        let [out, inp] = *view.shape() else {
            return Err(bad(
                path,
                format!("tensor '{name}' has shape {:?}; 2-D expected", view.shape()),
            ));
        };
        if let Some(want) = shape {
            if want != [out, inp] {
                return Err(bad(
                    path,
                    format!("tensor '{name}' has shape [{out}, {inp}]; {want:?} expected"),
                ));
            }
        }
        let weight = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Some(Layer {
            out,
            inp,
            weight,
            gate: None,
        }))
    };
    let need = |name: String, t: Option<Layer>| {
        t.ok_or_else(|| bad(path, format!("tensor '{name}' is missing")))
    };
    let mut hidden = Vec::with_capacity(layers);
    for l in 0..layers {
        let name = format!("{}.weight", 2 * l);
        let mut layer = need(name.clone(), tensor(&name, None)?)?;
        let shape = [layer.out, layer.inp];
        layer.gate = tensor(&format!("gate.{}.weight", 2 * l), Some(&shape))?.map(|g| g.weight);
        hidden.push(layer);
    }
    let name = format!("{}.weight", 2 * layers);
    let output = need(name.clone(), tensor(&name, None)?)?;
    let inr = if kind == Kind::Inr {
        let b = need("inr.B".into(), tensor("inr.B", None)?)?;
        let (width, height, channels) =
            (num("inr_width")?, num("inr_height")?, num("inr_channels")?);
        let coords = if channels == 3 { 3 } else { 2 };
        if !matches!(channels, 1 | 3) || width == 0 || height == 0 {
            return Err(bad(
                path,
                format!("INR image size {width} × {height} × {channels} is not valid"),
            ));
        }
        if b.inp != coords {
            return Err(bad(
                path,
                format!("tensor 'inr.B' has {} columns; {coords} expected", b.inp),
            ));
        }
        if let Some(i) = b.weight.iter().position(|v| !v.is_finite()) {
            return Err(bad(
                path,
                format!("tensor 'inr.B' holds {} at index {i}", b.weight[i]),
            ));
        }
        Some(InrMeta {
            half: b.out,
            coords,
            b: b.weight,
            sigma: real("inr_sigma")?,
            coord_scale: real("inr_coord_scale")?,
            width,
            height,
            channels,
        })
    } else {
        None
    };
    if seen != st.len() {
        let known = |n: &str| {
            n == "inr.B"
                || (0..=layers).any(|l| n == format!("{}.weight", 2 * l))
                || (0..layers).any(|l| n == format!("gate.{}.weight", 2 * l))
        };
        let extra = st.names().into_iter().find(|n| !known(n)).unwrap_or("?");
        return Err(bad(path, format!("unexpected tensor '{extra}'")));
    }
    let network = Network { hidden, output };
    network.validate(&path.display().to_string())?;
    for (k, v) in [("d", network.d()), ("k", network.k())] {
        if num(k)? != v {
            return Err(bad(
                path,
                format!(
                    "metadata '{k}' = {} disagrees with the tensors ({v})",
                    num(k)?
                ),
            ));
        }
    }
    if let Some(inr) = &inr {
        if 2 * inr.half != network.d() {
            return Err(bad(
                path,
                format!(
                    "tensor 'inr.B' gives {} features; the network reads {}",
                    2 * inr.half,
                    network.d()
                ),
            ));
        }
    }
    let list = |k: &str| info.get(k).map(String::as_str);
    let classes: Option<Vec<i64>> = list("classes")
        .map(|t| {
            serde_json::from_str(t)
                .map_err(|_| bad(path, "metadata 'classes' is not a list of integers"))
        })
        .transpose()?;
    match (&classes, kind) {
        (Some(c), Kind::Classifier) if c.len() == network.k() => {}
        (None, Kind::Regressor | Kind::Inr) => {}
        _ => {
            return Err(bad(
                path,
                format!(
                    "metadata 'classes' does not fit a {} with {} outputs (a classifier lists one label per output, other kinds none)",
                    kind.name(),
                    network.k()
                ),
            ))
        }
    }
    let columns: Option<Vec<String>> = list("columns")
        .map(|t| {
            serde_json::from_str(t)
                .map_err(|_| bad(path, "metadata 'columns' is not a list of names"))
        })
        .transpose()?;
    if let Some(c) = &columns {
        if c.len() != network.d() {
            return Err(bad(
                path,
                format!(
                    "metadata 'columns' names {} inputs; the network reads {}",
                    c.len(),
                    network.d()
                ),
            ));
        }
    }
    let meta = Meta {
        kind,
        task: get("task")?.to_string(),
        mode: get("mode")?.to_string(),
        m: num("m")?,
        s: num("s")?,
        layers,
        seed: get("seed")?
            .parse()
            .map_err(|_| bad(path, "metadata 'seed' is not a whole number"))?,
        classes,
        columns,
        inr,
    };
    Ok(Model { network, meta })
}
