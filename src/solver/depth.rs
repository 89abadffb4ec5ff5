//! Depth (SPEC §3): greedy layer-wise fitting. Each layer is a two-layer problem of its own with
//! budget `s / L`; the next layer's inputs are the hidden units of the layer just fitted,
//! `relu(X w_j)` under its generators (`1{X h_j > 0} · X w_j`), and its output weights are dropped.
//! Hidden rows are formed from the previous source's rows, so a streamed source stays streamed.
//! The vector-output model ([`fit_vector_layers`]) stacks the same way: each earlier layer keeps
//! its W1 part (the hidden units `relu(X W1ᵀ)` under its generators) and drops its W2 part.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::problem::data::{Data, InMemory, RowSource};
use crate::problem::network::{hidden_layer, Layer, Network};
use crate::problem::operator::{Generators, Operator};
use crate::problem::sparse::SparseVec;
use crate::solver::scalar::{signed_copy, Iht, IhtConfig, Recovery, StepRecord};
use crate::solver::vector::{VectorConfig, VectorIht};
use std::sync::Arc;

/// The hidden units `h_j(x) = 1{x·g_j > 0} · x·w_j` of a fitted layer (`m` of them), as rows.
pub struct Hidden {
    inner: Arc<dyn RowSource>,
    m: usize,
    w: SparseVec,
    gens: Generators,
    whole: Option<Arc<Data>>,
}

impl Hidden {
    /// The layer's hidden units over `inner`'s rows; materialized when `inner` is in memory (the
    /// next layer then runs full batch on it).
    pub fn new(
        inner: Arc<dyn RowSource>,
        m: usize,
        w: SparseVec,
        gens: Generators,
    ) -> Result<Self> {
        let mut hidden = Self {
            inner,
            m,
            w,
            gens,
            whole: None,
        };
        if let Some(data) = hidden.inner.whole() {
            hidden.whole = Some(Arc::new(hidden.transform(data)?));
        }
        Ok(hidden)
    }

    /// `relu`-masked hidden units of a data set, column-major (m columns), targets kept.
    fn transform(&self, data: Arc<Data>) -> Result<Data> {
        let n = data.n();
        let act = Operator::new(data.clone(), self.m, Generators::Weights(self.w.clone()))?;
        let mask = Operator::new(data.clone(), self.m, self.gens.clone())?;
        let mut xt = vec![0.0f32; n * self.m];
        let mut g = vec![0.0f32; n];
        for j in self.w.neurons(data.d()) {
            let col = &mut xt[j as usize * n..(j as usize + 1) * n];
            act.preactivation(j, 0, col);
            mask.preactivation(j, 0, &mut g);
            for (v, &gz) in col.iter_mut().zip(&g) {
                if gz <= 0.0 {
                    *v = 0.0;
                }
            }
        }
        Data::from_columns(n, self.m, xt, data.y().to_vec())
    }
}

impl RowSource for Hidden {
    fn n(&self) -> usize {
        self.inner.n()
    }
    fn d(&self) -> usize {
        self.m
    }
    fn rows(&self, rows: &[usize]) -> Result<Data> {
        match &self.whole {
            Some(data) => Ok(data.gather_rows(rows)),
            None => self.transform(Arc::new(self.inner.rows(rows)?)),
        }
    }
    fn whole(&self) -> Option<Arc<Data>> {
        self.whole.clone()
    }
}

/// The result of a greedy fit: one recovery per layer (the last one predicts), and the source of
/// the last layer's inputs.
pub struct Deep {
    pub layers: Vec<Recovery>,
    pub last_inputs: Arc<dyn RowSource>,
}

impl Deep {
    /// Nonzeros over all layers.
    pub fn nnz(&self) -> usize {
        self.layers.iter().map(|r| r.x.nnz()).sum()
    }
    /// Steps over all layers.
    pub fn steps(&self) -> usize {
        self.layers.iter().map(|r| r.steps).sum()
    }
    /// Solve time over all layers.
    pub fn seconds(&self) -> f64 {
        self.layers.iter().map(|r| r.seconds).sum()
    }
    /// Neurons holding weights in the last layer (whose inputs are `last_inputs`).
    pub fn neurons(&self) -> usize {
        self.last().x.neurons(self.last_inputs.d()).len()
    }
    /// The last layer.
    pub fn last(&self) -> &Recovery {
        self.layers.last().expect("at least one layer")
    }

    /// The fitted function as dense layers over the live neurons (`d`: the first layer's
    /// inputs), ending in an output layer of ±1 (σ_j of a signed neuron, else 1): what the model file stores.
    pub fn network(&self, d: usize) -> Result<Network> {
        let mut hidden = Vec::with_capacity(self.layers.len());
        let (mut d_in, mut live): (usize, Option<Vec<u32>>) = (d, None);
        let last = self.layers.len() - 1;
        let mut signs = Vec::new();
        for (l, rec) in self.layers.iter().enumerate() {
            // The last layer's signed neurons become plain ReLU units `relu(x·σ_j w_j)` with
            // output weights σ_j; an earlier layer's stay gated units (their sign is the next
            // layer's input).
            let (layer, next) = if l == last && !rec.negated().is_empty() {
                let u = signed_copy(&rec.x, rec.m(), Some(rec.negated()));
                let gens = Generators::Weights(u.clone());
                let (layer, next) = hidden_layer(&u, &gens, rec.m(), d_in, live.as_deref())?;
                signs = (next.iter())
                    .map(|j| match rec.negated().binary_search(j) {
                        Ok(_) => -1.0,
                        Err(_) => 1.0,
                    })
                    .collect();
                (layer, next)
            } else {
                hidden_layer(&rec.x, &rec.generators(), rec.m(), d_in, live.as_deref())?
            };
            hidden.push(layer);
            (d_in, live) = (rec.m(), Some(next));
        }
        let width = live.map_or(0, |l| l.len());
        if signs.len() != width {
            signs = vec![1.0; width];
        }
        Ok(Network {
            hidden,
            output: Layer {
                out: 1,
                inp: width,
                weight: signs,
                gate: None,
            },
        })
    }

    /// The last layer's inputs for other rows (e.g. a test set): `source` through every layer
    /// but the last.
    pub fn inputs_of(&self, source: Arc<dyn RowSource>, m: usize) -> Result<Arc<dyn RowSource>> {
        let mut src = source;
        for rec in &self.layers[..self.layers.len() - 1] {
            src = Arc::new(Hidden::new(src, m, rec.x.clone(), rec.generators())?);
        }
        Ok(src)
    }

    /// The model's output on every row of `source` (chunks of `chunk` rows).
    pub fn predict<B: Backend>(
        &self,
        be: &mut B,
        source: Arc<dyn RowSource>,
        m: usize,
        chunk: usize,
    ) -> Result<Vec<f32>> {
        let inputs = self.inputs_of(source, m)?;
        let rec = self.last();
        crate::solver::scalar::predict_rows(
            be,
            inputs.as_ref(),
            m,
            &rec.generators(),
            &rec.x,
            chunk,
        )
    }
}

/// Fits `layers` layers greedily with `m` neurons each and budget `config.s / layers` each.
pub fn fit_layers<B: Backend>(
    backend: B,
    source: Arc<dyn RowSource>,
    m: usize,
    config: &IhtConfig,
    layers: usize,
    mut on_step: impl FnMut(usize, &StepRecord),
) -> Result<(Deep, B)> {
    check_layers(layers, config.s)?;
    let mut backend = backend;
    let mut src = source;
    let mut recs = Vec::with_capacity(layers);
    for l in 0..layers {
        let cfg = IhtConfig {
            s: config.s / layers,
            ..config.clone()
        };
        let mut solver = Iht::from_source(backend, src.clone(), m, cfg)?;
        let rec = solver.on_step(|st| on_step(l, st)).solve()?;
        backend = solver.into_backend();
        if l + 1 < layers {
            src = Arc::new(Hidden::new(src, m, rec.x.clone(), rec.generators())?);
        }
        recs.push(rec);
    }
    Ok((
        Deep {
            layers: recs,
            last_inputs: src,
        },
        backend,
    ))
}

/// A greedy vector-output fit: the earlier layers' hidden units and the last layer's solver.
pub struct VectorDeep<B: Backend> {
    /// W1 weights and generators of every layer but the last.
    pub hidden: Vec<(SparseVec, Generators)>,
    pub last: VectorIht<B>,
    m: usize,
}

impl<B: Backend> VectorDeep<B> {
    /// The last layer's inputs for `data`: its rows through every layer but the last.
    pub fn inputs_of(&self, data: Arc<Data>) -> Result<Arc<Data>> {
        let mut cur = data;
        for (w, gens) in &self.hidden {
            let src: Arc<dyn RowSource> = Arc::new(InMemory(cur));
            let h = Hidden::new(src, self.m, w.clone(), gens.clone())?;
            cur = h.whole().expect("in-memory hidden units are materialized");
        }
        Ok(cur)
    }

    /// The model's output `Ŷ` (n × k row-major) on `data`.
    pub fn predict(&mut self, data: Arc<Data>) -> Result<Vec<f32>> {
        let inputs = self.inputs_of(data)?;
        self.last.predict(inputs)
    }

    /// The fitted function as dense layers over the live neurons, ending in W2 (`k × m_live`):
    /// what the model file stores.
    pub fn network(&self) -> Result<Network> {
        let (k, m, d_last) = self.last.shape();
        let mut hidden = Vec::with_capacity(self.hidden.len() + 1);
        let mut d_in = if self.hidden.is_empty() { d_last } else { 0 };
        let mut live: Option<Vec<u32>> = None;
        for (l, (w, gens)) in self.hidden.iter().enumerate() {
            if l == 0 {
                d_in = w.len() as usize / m;
            }
            let (layer, next) = hidden_layer(w, gens, m, d_in, live.as_deref())?;
            hidden.push(layer);
            (d_in, live) = (m, Some(next));
        }
        let (layer, last_live) = hidden_layer(
            &self.last.w1(),
            &self.last.prediction_generators(),
            m,
            d_in,
            live.as_deref(),
        )?;
        hidden.push(layer);
        let output = Layer {
            out: k,
            inp: last_live.len(),
            weight: self.last.w2_dense(&last_live),
            gate: None,
        };
        Ok(Network { hidden, output })
    }

    /// Nonzeros kept over all layers (earlier layers count their W1 part only).
    pub fn nnz(&self) -> usize {
        self.hidden.iter().map(|(w, _)| w.nnz()).sum::<usize>() + self.last.x().nnz()
    }

    /// Steps over all layers.
    pub fn steps(&self) -> usize {
        (self.hidden.len() + 1) * self.last.total_steps()
    }
}

/// Fits `layers` vector-output layers greedily with `m` neurons each and budget `config.s / layers`
/// each; `targets` is n × k row-major. `on_step(layer, step, loss)` follows every step.
#[allow(clippy::too_many_arguments)]
pub fn fit_vector_layers<B: Backend>(
    backend: B,
    data: Arc<Data>,
    targets: Vec<f32>,
    k: usize,
    m: usize,
    config: &VectorConfig,
    layers: usize,
    mut on_step: impl FnMut(usize, usize, f64),
) -> Result<VectorDeep<B>> {
    check_layers(layers, config.s)?;
    let cfg = VectorConfig {
        s: config.s / layers,
        ..config.clone()
    };
    let mut backend = backend;
    let mut inputs = data;
    let mut hidden = Vec::with_capacity(layers - 1);
    for l in 0..layers {
        let mut solver =
            VectorIht::new(backend, inputs.clone(), targets.clone(), k, m, cfg.clone())?;
        solver.run(|t, loss| on_step(l, t, loss))?;
        if l + 1 == layers {
            return Ok(VectorDeep {
                hidden,
                last: solver,
                m,
            });
        }
        let (w, gens) = (solver.w1(), solver.prediction_generators());
        let src: Arc<dyn RowSource> = Arc::new(InMemory(inputs));
        inputs = Hidden::new(src, m, w.clone(), gens.clone())?
            .whole()
            .expect("in-memory hidden units are materialized");
        hidden.push((w, gens));
        backend = solver.into_backend();
    }
    unreachable!("the last layer returns")
}

/// A greedy fit needs at least one layer and one weight of the budget `s` per layer.
fn check_layers(layers: usize, s: usize) -> Result<()> {
    if layers == 0 {
        return Err(Error::invalid("layers", layers, "must be at least 1"));
    }
    if s < layers {
        return Err(Error::invalid(
            "s",
            s,
            format!("must give each of the {layers} layers at least one weight"),
        ));
    }
    Ok(())
}
