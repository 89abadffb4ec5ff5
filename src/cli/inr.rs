//! `relu-iht inr`: fit an image (a file, or a digit of the MNIST test split) as a sparse ReLU
//! network of its Fourier-featured pixel coordinates; print PSNR and write the reconstruction.

use super::args::{CoordsChoice, InrArgs, MethodChoice, SolverArgs};
use super::engine;
use super::imp::{self, ImpRun, Which};
use super::report::{self, RunRecord};
use super::save;
use anyhow::{bail, Result};
use relu_iht::io::model_file::Kind;
use relu_iht::problem::data::RowSource;
use relu_iht::problem::model::Loss;
use relu_iht::solver::depth::Deep;
use relu_iht::solver::scalar::{Iht, IhtConfig, Safeguards, DEFAULT_AVERAGE};
use relu_iht::tasks::inr::{
    self, FourierFeatures, HighBand, Image, InrRequest, PAPER_S, PAPER_STEPS,
};
use relu_iht::tasks::mnist;
use relu_iht::Backend;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

/// Largest feature matrix materialized in memory; beyond it, features are generated per batch.
const MAX_FEATURE_BYTES: u64 = 1 << 30;

/// What `inr` fits: the image, its label, and every setting resolved from the flags, the preset
/// (`--paper`) and the input's defaults.
struct Plan {
    image: Image,
    /// With --holdout, the whole image (`image` is then its sub-grid).
    full: Option<Image>,
    label: String,
    sigma: f32,
    band: Option<HighBand>,
    unit: bool,
    features: usize,
    /// The solver's flags with the defaults filled in.
    solver: SolverArgs,
    safeguards: Safeguards,
}

/// Loads the input and resolves the settings: `--paper` and an MNIST digit take the paper's;
/// other images the photo defaults, which fit the whole image ([`InrRequest::resolve`]).
fn plan(a: &InrArgs) -> Result<Plan> {
    let digit = a.mnist_digit.is_some();
    let max_side = a.max_side.unwrap_or(usize::MAX);
    if max_side == 0 {
        bail!("invalid --max-side = 0: must be at least 1");
    }
    let (image, label) = match a.mnist_digit {
        Some(index) => {
            // The paper's 10-class test split has 1000 images per digit.
            if index >= 10_000 {
                bail!(
                    "invalid --mnist-digit = {index}: the test split has 10000 images (0..=9999)"
                );
            }
            let (_, test) = mnist::load_split(
                &a.data_dir.join("mnist"),
                &(0..10).collect::<Vec<u8>>(),
                5000,
                1000,
            )?;
            (
                Image::gray(28, 28, &test.image(index)),
                format!("MNIST test digit {index}"),
            )
        }
        None => match &a.image {
            Some(path) => (Image::load(path, max_side)?, path.display().to_string()),
            None => {
                let name = PathBuf::from("assets/camera.png (bundled)");
                let image = Image::decode(inr::BUNDLED_CAMERA, &name, max_side)?;
                (image, name.display().to_string())
            }
        },
    };
    let (image, full) = if a.holdout {
        (image.subgrid(), Some(image))
    } else {
        (image, None)
    };
    let request = InrRequest {
        paper: a.paper,
        digit,
        unit: match (a.coords, a.unit_coords) {
            (Some(c), _) => Some(c == CoordsChoice::Unit),
            (None, true) => Some(true),
            (None, false) => None,
        },
        sigma: a.sigma,
        sigma_high: a.sigma_high,
        high_share: a.high_share,
        features: a.features,
        m: a.solver.m,
        s: a.solver.s,
        steps: a.solver.steps,
        batch_size: a.solver.batch_size,
        epochs: a.solver.epochs,
        warmup: a.solver.warmup,
        inner_steps: a.solver.inner_steps,
    };
    let plan = request.resolve(image.len());
    let mut solver = a.solver.clone();
    solver.m = Some(plan.m);
    solver.s = Some(plan.s);
    solver.batch_size = plan.batch_size;
    solver.warmup = plan.warmup;
    solver.inner_steps = Some(plan.inner_steps);
    if plan.batch_size.is_some() {
        (solver.steps, solver.epochs) = (None, Some(plan.steps));
    } else {
        (solver.steps, solver.epochs) = (Some(plan.steps), None);
    }
    if let (true, Some(batch), false) = (plan.streamed_by_default, plan.batch_size, a.solver.quiet)
    {
        eprintln!(
            "fitting the whole {} × {} × {} image ({} samples) in batches of {batch}, {} epochs (--max-side downscales, --paper takes the paper's settings)",
            image.width, image.height, image.channels, image.len(), plan.steps
        );
    }
    Ok(Plan {
        image,
        full,
        label,
        sigma: plan.sigma,
        band: plan.band,
        unit: plan.unit,
        features: plan.features,
        solver,
        safeguards: plan.safeguards,
    })
}

pub fn run(a: &InrArgs) -> Result<()> {
    a.solver.to_config(PAPER_STEPS, PAPER_S)?;
    a.solver.check_save()?;
    a.solver.check_trace()?;
    // Every output path is checked before any work: its folder exists, it is not a folder, and
    // the reconstruction does not overwrite the checkpoint.
    relu_iht::atomic::check_writable("--out", &a.out)?;
    let peer = check_curve(a)?;
    if let Some(ck) = &a.solver.checkpoint {
        relu_iht::atomic::check_writable("--checkpoint", ck)?;
        let same = ck == &a.out
            || (ck.canonicalize().ok()).is_some_and(|c| a.out.canonicalize().ok() == Some(c));
        if same {
            bail!(
                "invalid --checkpoint = {}: the same file as --out",
                ck.display()
            );
        }
    }
    let Plan {
        image,
        full,
        label,
        sigma,
        band,
        unit,
        features,
        solver,
        safeguards,
    } = plan(a)?;
    let a = &InrArgs {
        solver,
        unit_coords: unit,
        ..a.clone()
    };
    let config = IhtConfig {
        safeguards,
        average: match (a.paper, a.solver.average) {
            (false, None) => Some(DEFAULT_AVERAGE),
            (_, given) => given.filter(|&v| v != 0.0),
        },
        ..a.solver.to_config(PAPER_STEPS, PAPER_S)?
    };
    // Sizes first, before the frequencies or any feature is generated.
    let (n, dim) = (image.len(), features);
    let bytes = n as u128 * dim as u128 * 4;
    if bytes > MAX_FEATURE_BYTES as u128 && config.batch_size.is_none() {
        bail!(
            "invalid image size {} × {} × {}: its {dim} features per sample would take {bytes} bytes; pass --batch-size (features are then generated per batch) or lower --max-side",
            image.width, image.height, image.channels
        );
    }
    let cols = a.solver.m_or(200) as u128 * dim as u128;
    if cols >= u32::MAX as u128 {
        return Err(relu_iht::Error::TooLarge(cols).into());
    }
    config.validate(n, cols as u64)?;
    // The frequencies (features × coordinates), and the features of a batch (all of them in full
    // batch) with a working copy.
    let rows = config.batch_size.unwrap_or(n) as u128;
    let bytes = 4 * dim as u128 * (image.coord_dims() as u128 + 2 * rows);
    relu_iht::mem::check_fits("features", features, bytes)?;
    let ff = FourierFeatures::with_band(features, image.coord_dims(), sigma, band, config.seed)?;
    if a.out
        .extension()
        .is_none_or(|e| !e.eq_ignore_ascii_case("png"))
    {
        bail!(
            "invalid --out = {}: the reconstruction is written as PNG (use a .png name)",
            a.out.display()
        );
    }
    if a.solver.method == MethodChoice::Imp {
        if a.holdout {
            bail!("invalid --holdout with --method imp: the held-out test scores IHT fits in this build");
        }
        return imp_fit(a, &config, &image, ff, &label);
    }
    // With minibatches the features of each batch are generated on demand (memory bounded by the
    // batch); in full batch they are formed once.
    let meta = inr::inr_meta(&image, &ff, sigma, a.unit_coords);
    let rows = inr::feature_rows(&image, ff, a.unit_coords, config.batch_size.is_some())?;
    let engine = engine::for_run(&a.solver)?;
    let images = (&image, full.as_ref());
    crate::with_engine!(engine, b => fit(a, &config, images, rows, (sigma, band, meta), (&label, &peer), b))
}

/// The network's scores on the whole image of a held-out test (every pixel, the fitted sub-grid's
/// and the others'), all from one full-size rendering.
struct Heldout {
    recon: Image,
    all: f64,
    train: f64,
    heldout: f64,
}

fn score_heldout(
    network: &relu_iht::problem::network::Network,
    meta: &relu_iht::io::model_file::InrMeta,
    full: &Image,
) -> Result<Heldout> {
    let recon = inr::render_full_grid(network, meta, full.width, full.height)?;
    let all = inr::psnr(&full.pixels, &recon.pixels);
    let on = full.on_subgrid();
    let part = |fitted: bool| {
        let (want, got): (Vec<f32>, Vec<f32>) = (full.pixels.iter().zip(&recon.pixels))
            .zip(&on)
            .filter(|(_, &f)| f == fitted)
            .map(|((&w, &g), _)| (w, g))
            .unzip();
        inr::psnr(&want, &got)
    };
    let (train, heldout) = (part(true), part(false));
    Ok(Heldout {
        recon,
        all,
        train,
        heldout,
    })
}

fn fit<B: Backend>(
    a: &InrArgs,
    config: &IhtConfig,
    (image, full): (&Image, Option<&Image>),
    rows: Arc<dyn RowSource>,
    (sigma, band, inr_meta): (f32, Option<HighBand>, relu_iht::io::model_file::InrMeta),
    (label, peer): (&str, &[PeerRun]),
    backend: B,
) -> Result<()> {
    let name = backend.name();
    let m = a.solver.m_or(200);
    let (n, d) = (rows.n(), rows.d());
    let layers = a.solver.layers;
    let chunk = config.batch_size.unwrap_or(n);
    let mut resumed_at = None;
    let mut points: Vec<(f64, f64)> = Vec::new();
    let (deep, pred) = if layers > 1 {
        if a.solver.checkpoint.is_some() {
            bail!("invalid --checkpoint with --layers = {layers}: checkpoints cover one-layer fits in this build");
        }
        let (deep, mut be) =
            report::fit_layers(backend, rows.clone(), m, config, layers, a.solver.quiet)?;
        let pred = deep.predict(&mut be, rows.clone(), m, chunk)?;
        (deep, pred)
    } else {
        // --curve: the fit scored along the way on a fixed sample of pixels.
        let sample = match &a.curve {
            Some(_) => Some(curve_sample(rows.as_ref())?),
            None => None,
        };
        // The bar outlives the solver that borrows it through the step callback.
        let bar = report::progress(config.total_steps(n), a.solver.quiet);
        let mut on_step = report::layer_step(&bar);
        let mut solver = Iht::from_source(backend, rows.clone(), m, config.clone())?;
        if let Some(path) = &a.solver.checkpoint {
            let fingerprint = format!(
                "inr of {label} ({} × {} × {}), {d} features, sigma {sigma}, unit coords {}, m {m}, {config:?}",
                image.width, image.height, image.channels, a.unit_coords
            );
            if a.solver.resume {
                resumed_at = Some(solver.resume(path, &fingerprint)?);
            }
            solver.checkpoint_every(path, a.solver.checkpoint_every, &fingerprint)?;
        }
        if let Some(sample) = &sample {
            let every = match config.batch_size {
                Some(_) => solver.batches_per_epoch().div_ceil(8),
                None => config.steps.div_ceil(20),
            };
            let clock = std::time::Instant::now();
            let mut spent = std::time::Duration::ZERO;
            let pts = &mut points;
            solver.on_snapshot(every, move |_, gens, x| {
                let at = clock.elapsed().saturating_sub(spent);
                let start = std::time::Instant::now();
                if let Ok(pred) = relu_iht::problem::operator::apply_sparse(sample, gens, x) {
                    pts.push((at.as_secs_f64(), inr::psnr_clipped(sample.y(), &pred)));
                }
                spent += start.elapsed();
            });
        }
        let rec = solver.on_step(|st| on_step(0, st)).solve()?;
        bar.finish_and_clear();
        let mut be = solver.into_backend();
        let deep = Deep {
            layers: vec![rec],
            last_inputs: rows.clone(),
        };
        let pred = deep.predict(&mut be, rows.clone(), m, chunk)?;
        (deep, pred)
    };
    let recon = image.with_pixels(&pred);
    let fit_psnr = inr::psnr(&image.pixels, &recon.pixels);
    let fit_psnr_clipped = inr::psnr_clipped(&image.pixels, &recon.pixels);
    if let Some(path) = &a.curve {
        points.push((deep.seconds(), fit_psnr_clipped));
        draw_curve(path, label, deep.nnz(), &points, peer)?;
    }
    let network = deep.network(d)?;
    let heldout = match full {
        Some(full) => Some(score_heldout(&network, &inr_meta, full)?),
        None => None,
    };
    let psnr = heldout.as_ref().map_or(fit_psnr, |h| h.all);
    match &heldout {
        Some(h) => h.recon.save_png(&a.out)?,
        None => recon.save_png(&a.out)?,
    }
    let shown = full.unwrap_or(image);
    let mut record = RunRecord::scalar_iht(
        "inr",
        name,
        (n, d, m, config.s),
        config.seed,
        &deep,
        json!({
            "image": label,
            "width": shown.width,
            "height": shown.height,
            "channels": image.channels,
            "holdout": heldout.as_ref().map(|h| json!({
                "fit_width": image.width,
                "fit_height": image.height,
                "psnr_train": h.train,
                "psnr_heldout": h.heldout,
            })),
            "sigma": sigma,
            "sigma_high": band.map(|b| b.sigma),
            "high_share": band.map(|b| b.share),
            "unit_coords": a.unit_coords,
            "psnr": psnr,
            "psnr_clipped": fit_psnr_clipped,
            "curve": a.curve.as_ref().map(|_| &points),
            "exact_fit": psnr == f64::INFINITY,
            "batch_size": config.batch_size,
            "epochs": config.batch_size.map(|_| config.steps),
            "inner_steps": config.inner_steps,
            "warmup": config.warmup,
            "resumed_at_step": resumed_at,
            "out": a.out.display().to_string(),
            "neurons": deep.neurons(),
        }),
    );
    let mut meta = save::meta("inr", Kind::Inr, &a.solver, config, m);
    meta.inr = Some(inr_meta);
    save::save(&a.solver, network, meta, &mut record)?;
    report::write_trace(&a.solver, &deep)?;
    if a.solver.json {
        return record.print();
    }
    let band = band.map_or(String::new(), |b| {
        format!(", {:.0} % at σ = {}", 100.0 * b.share, b.sigma)
    });
    println!(
        "INR of {label} ({} × {} × {}): {n} samples, {d} Fourier features (σ = {sigma}{band}), m = {m}, s = {}",
        image.width, image.height, image.channels, config.s
    );
    println!(
        "{} nonzeros in {} neurons after {} steps in {:.2} s; PSNR {:.2} dB; wrote {}",
        deep.nnz(),
        deep.neurons(),
        deep.steps(),
        deep.seconds(),
        fit_psnr,
        a.out.display()
    );
    if let (Some(h), Some(full)) = (&heldout, full) {
        println!(
            "held out: the {} × {} image scored from its {} × {} sub-grid: PSNR {:.2} dB on every pixel, {:.2} dB on the {} pixels not fitted",
            full.width,
            full.height,
            image.width,
            image.height,
            h.all,
            h.heldout,
            full.width * full.height - image.width * image.height
        );
    }
    Ok(())
}

/// `--method imp`: the IMP baseline on the image's features; writes the reconstruction of the
/// first budget's model (retrained when `--imp-retrain`).
fn imp_fit(
    a: &InrArgs,
    config: &IhtConfig,
    image: &Image,
    ff: FourierFeatures,
    label: &str,
) -> Result<()> {
    let n = image.len();
    let bytes = n as u64 * ff.dim() as u64 * 4;
    if bytes > MAX_FEATURE_BYTES {
        bail!("invalid image size {} × {} × {} with --method imp: its dense features would take {bytes} bytes (IMP trains in memory); lower --max-side", image.width, image.height, image.channels);
    }
    let data = inr::feature_data(image, &ff, a.unit_coords)?;
    let run = ImpRun {
        task: "inr",
        solver: &a.solver,
        config,
        m: a.solver.m_or(200),
        k: 1,
        loss: Loss::Mse,
        data: &data,
        targets: &image.pixels,
        extra: json!({"image": label, "width": image.width, "height": image.height, "channels": image.channels, "unit_coords": a.unit_coords, "out": a.out.display().to_string()}),
    };
    imp::run(run, |model, which| {
        let recon = image.with_pixels(&model.predict(&data)?);
        let psnr = inr::psnr(&image.pixels, &recon.pixels);
        let write = match which {
            Which::Pruned(0) => !a.solver.imp_retrain,
            Which::Retrained(0) => true,
            _ => false,
        };
        if write {
            recon.save_png(&a.out)?;
        }
        Ok((
            json!({"psnr": psnr, "exact_fit": psnr == f64::INFINITY}),
            format!("PSNR {psnr:.2} dB"),
        ))
    })
}

/// One run of a peer for `--curve` (a line of `../bench/inr_peer.py`'s output).
pub struct PeerRun {
    seconds: f64,
    psnr: f64,
    name: String,
}

/// Checks `--curve` and `--peer` before any work: an IHT fit of one layer, a writable PNG path,
/// and a peer file of JSON lines each with finite `seconds` and `psnr`. Returns the peer's runs.
fn check_curve(a: &InrArgs) -> Result<Vec<PeerRun>> {
    let Some(path) = &a.curve else {
        return Ok(Vec::new());
    };
    if path
        .extension()
        .is_none_or(|e| !e.eq_ignore_ascii_case("png"))
    {
        bail!(
            "invalid --curve = {}: the curve is written as PNG (use a .png name)",
            path.display()
        );
    }
    relu_iht::atomic::check_writable("--curve", path)?;
    if a.solver.method == MethodChoice::Imp || a.solver.layers > 1 {
        bail!("invalid --curve with --method imp or --layers > 1: the curve follows a one-layer IHT fit");
    }
    let Some(peer) = &a.peer else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(peer)
        .map_err(|e| anyhow::anyhow!("cannot read --peer = {}: {e}", peer.display()))?;
    let mut runs = Vec::new();
    for (k, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |why: &str| anyhow::anyhow!("{}: line {}: {why}", peer.display(), k + 1);
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let num = |key: &str| v[key].as_f64().filter(|x| x.is_finite());
        let (Some(seconds), Some(psnr)) = (num("seconds"), num("psnr")) else {
            return Err(bad("needs finite numbers 'seconds' and 'psnr'"));
        };
        let model = v["model"].as_str().unwrap_or("peer");
        let name = match v["params"].as_u64() {
            Some(p) => format!("dense {model} ({p} parameters)"),
            None => format!("dense {model}"),
        };
        runs.push(PeerRun {
            seconds,
            psnr,
            name,
        });
    }
    if runs.is_empty() {
        bail!("invalid --peer = {}: no runs in it", peer.display());
    }
    Ok(runs)
}

/// Up to 16384 samples of `rows`, evenly strided: the curve's fixed sample.
fn curve_sample(rows: &dyn RowSource) -> Result<relu_iht::problem::data::Data> {
    let n = rows.n();
    let stride = n.div_ceil(16384).max(1);
    let idx: Vec<usize> = (0..n).step_by(stride).collect();
    Ok(rows.rows(&idx)?)
}

/// Draws relu-iht's points and the peer's runs (each its own series, by name) on one plot.
fn draw_curve(
    path: &std::path::Path,
    label: &str,
    nnz: usize,
    ours: &[(f64, f64)],
    peer: &[PeerRun],
) -> Result<()> {
    let mut x: Vec<f64> = ours
        .iter()
        .map(|p| p.0)
        .chain(peer.iter().map(|p| p.seconds))
        .collect();
    x.sort_by(f64::total_cmp);
    x.dedup();
    let at = |pts: &[(f64, f64)]| -> Vec<Option<f64>> {
        x.iter()
            .map(|&t| pts.iter().find(|p| p.0 == t).map(|p| p.1))
            .collect()
    };
    let mut series = vec![(format!("relu-iht ({nnz} nonzeros)"), at(ours))];
    let mut names: Vec<&str> = peer.iter().map(|p| p.name.as_str()).collect();
    names.dedup();
    for name in names {
        let mut pts: Vec<(f64, f64)> = (peer.iter().filter(|p| p.name == name))
            .map(|p| (p.seconds, p.psnr))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push((name.to_string(), at(&pts)));
    }
    let ys = ours.iter().map(|p| p.1).chain(peer.iter().map(|p| p.psnr));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let curves = relu_iht::plot::Curves {
        title: format!("PSNR against solve time: {label}"),
        x_label: "seconds".into(),
        y_label: "PSNR (dB, predictions clipped to [0, 1])".into(),
        x,
        series,
        log_x: false,
        y_range: ((lo - 1.0).floor(), (hi + 1.0).ceil()),
        join_gaps: true,
    };
    relu_iht::plot::curves_png(path, &curves)?;
    Ok(())
}
