//! `relu-iht predict` and `relu-iht render`: a saved model applied to new inputs, or a saved INR
//! drawn at any size. The model file is read and checked in full, the output path checked, and
//! the inputs matched to the model (a CSV by the model's column names) before any work; outputs
//! are written atomically.

use super::args::{PredictArgs, RenderArgs};
use anyhow::{bail, Result};
use relu_iht::io::model_file::{self, Kind};
use relu_iht::io::{self, table, Format};
use relu_iht::problem::dense::View;
use relu_iht::problem::model::argmax_rows;
use relu_iht::tasks::inr;
use serde_json::json;

pub fn predict(a: &PredictArgs) -> Result<()> {
    relu_iht::atomic::check_writable("--out", &a.out)?;
    let format = output_format(&a.out)?;
    let model = model_file::load(&a.model)?;
    let (net, meta) = (&model.network, &model.meta);
    if meta.kind == Kind::Inr {
        bail!(
            "invalid --model = {}: an INR model; draw it with `relu-iht render`",
            a.model.display()
        );
    }
    let (inputs, _) = io::read_inputs(&a.x, None, meta.columns.as_deref())?;
    if inputs.d != net.d() {
        bail!(
            "{}: {} features where the model ({}) reads {}",
            a.x.display(),
            inputs.d,
            a.model.display(),
            net.d()
        );
    }
    let n = inputs.n;
    let start = std::time::Instant::now();
    let yhat = net.predict(View::cols(&inputs.xt, n), n);
    let seconds = start.elapsed().as_secs_f64();
    let k = net.k();
    match (&meta.classes, format) {
        (Some(classes), Format::Npy) => {
            let labels: Vec<i64> = argmax_rows(&yhat, k).iter().map(|&c| classes[c]).collect();
            io::npy::write(&a.out, &[n], &labels)?;
        }
        (Some(classes), Format::Csv) => {
            let labels: Vec<f64> = argmax_rows(&yhat, k)
                .iter()
                .map(|&c| classes[c] as f64)
                .collect();
            relu_iht::atomic::write(&a.out, &table::encode(&["label".into()], &labels)?)?;
        }
        (None, Format::Npy) if k == 1 => io::npy::write(&a.out, &[n], &yhat)?,
        (None, Format::Npy) => io::npy::write(&a.out, &[n, k], &yhat)?,
        (None, Format::Csv) => {
            let header: Vec<String> = if k == 1 {
                vec!["prediction".into()]
            } else {
                (0..k).map(|c| format!("prediction_{c}")).collect()
            };
            let values: Vec<f64> = yhat.iter().map(|&v| v as f64).collect();
            relu_iht::atomic::write(&a.out, &table::encode(&header, &values)?)?;
        }
    }
    if a.json {
        println!(
            "{}",
            json!({"task": "predict", "model": a.model.display().to_string(), "x": a.x.display().to_string(),
                   "out": a.out.display().to_string(), "n": n, "d": net.d(), "k": k,
                   "kind": if meta.classes.is_some() { "classifier" } else { "regressor" },
                   "seconds": seconds, "peak_host_bytes": relu_iht::mem::peak_host_bytes()})
        );
    } else {
        println!(
            "predicted {n} rows with {} ({} → {} output{}) in {seconds:.3} s; wrote {}",
            a.model.display(),
            net.d(),
            k,
            if k == 1 { "" } else { "s" },
            a.out.display()
        );
    }
    Ok(())
}

/// `.npy` or `.csv` by the output's name.
fn output_format(path: &std::path::Path) -> Result<Format> {
    match path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .as_deref()
    {
        Some("npy") => Ok(Format::Npy),
        Some("csv") => Ok(Format::Csv),
        _ => bail!(
            "invalid --out = {}: predictions are written as .npy or .csv",
            path.display()
        ),
    }
}

/// The largest side `render` draws.
const MAX_SIDE: usize = 1 << 15;

/// `WIDTHxHEIGHT`, or one number for the longer side with the fitted aspect ratio.
fn parse_size(text: &str, fitted: (usize, usize)) -> Result<(usize, usize)> {
    let bad = || {
        anyhow::anyhow!(
            "invalid --size = {text}: WIDTHxHEIGHT (e.g. 1024x768) or one number for the longer side, each 1 to {MAX_SIDE}"
        )
    };
    let side = |t: &str| -> Result<usize> {
        match t.trim().parse::<usize>() {
            Ok(v) if (1..=MAX_SIDE).contains(&v) => Ok(v),
            _ => Err(bad()),
        }
    };
    let lower = text.to_ascii_lowercase();
    if let Some((w, h)) = lower.split_once('x') {
        return Ok((side(w)?, side(h)?));
    }
    let longer = side(&lower)?;
    let (w, h) = fitted;
    let scale = longer as f64 / w.max(h) as f64;
    Ok((
        ((w as f64 * scale).round() as usize).max(1),
        ((h as f64 * scale).round() as usize).max(1),
    ))
}

pub fn render(a: &RenderArgs) -> Result<()> {
    if a.out
        .extension()
        .is_none_or(|e| !e.eq_ignore_ascii_case("png"))
    {
        bail!(
            "invalid --out = {}: the image is written as PNG (use a .png name)",
            a.out.display()
        );
    }
    relu_iht::atomic::check_writable("--out", &a.out)?;
    let model = model_file::load(&a.model)?;
    let Some(meta) = &model.meta.inr else {
        bail!(
            "invalid --model = {}: not an INR model (fitted by `{}`); use `relu-iht predict`",
            a.model.display(),
            model.meta.task
        );
    };
    let (width, height) = match &a.size {
        Some(text) => parse_size(text, (meta.width, meta.height))?,
        None => (meta.width, meta.height),
    };
    let start = std::time::Instant::now();
    let image = inr::render(&model.network, meta, width, height)?;
    let seconds = start.elapsed().as_secs_f64();
    image.save_png(&a.out)?;
    if a.json {
        println!(
            "{}",
            json!({"task": "render", "model": a.model.display().to_string(), "out": a.out.display().to_string(),
                   "width": width, "height": height, "channels": image.channels,
                   "fitted_width": meta.width, "fitted_height": meta.height,
                   "seconds": seconds, "peak_host_bytes": relu_iht::mem::peak_host_bytes()})
        );
    } else {
        println!(
            "rendered {} ({} × {} fitted) at {width} × {height} in {seconds:.2} s; wrote {}",
            a.model.display(),
            meta.width,
            meta.height,
            a.out.display()
        );
    }
    Ok(())
}
