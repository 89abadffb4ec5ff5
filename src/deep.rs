//! Depth (SPEC §3): greedy layer-wise fitting. Each layer is a two-layer problem of its own with
//! budget `s / L`; the next layer's inputs are the hidden units of the layer just fitted,
//! `relu(X w_j)` under its generators (`1{X h_j > 0} · X w_j`), and its output weights are dropped.
//! Hidden rows are formed from the previous source's rows, so a streamed source stays streamed.

use crate::backend::Backend;
use crate::data::{Data, RowSource};
use crate::error::{Error, Result};
use crate::iht::{Iht, IhtConfig, Recovery, StepRecord};
use crate::operator::{Generators, Operator};
use crate::sparse::SparseVec;
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
    /// The last layer.
    pub fn last(&self) -> &Recovery {
        self.layers.last().expect("at least one layer")
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
        crate::iht::predict_rows(be, inputs.as_ref(), m, &rec.generators(), &rec.x, chunk)
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
    if layers == 0 {
        return Err(Error::invalid("layers", layers, "must be at least 1"));
    }
    if config.s < layers {
        return Err(Error::invalid(
            "s",
            config.s,
            format!("must give each of the {layers} layers at least one weight"),
        ));
    }
    let mut backend = backend;
    let mut src = source;
    let mut recs = Vec::with_capacity(layers);
    for l in 0..layers {
        let cfg = IhtConfig {
            s: config.s / layers,
            ..config.clone()
        };
        let mut solver = Iht::from_source(backend, src.clone(), m, cfg)?;
        let rec = solver.solve(|st| on_step(l, st))?;
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
