//! `relu-iht inr`: fit an image (a file, or a digit of the MNIST test split) as a sparse ReLU
//! network of its Fourier-featured pixel coordinates; print PSNR and write the reconstruction.

use super::args::InrArgs;
use super::report::{self, RunRecord};
use anyhow::{bail, Context, Result};
use relu_iht::data::Data;
use relu_iht::iht::{self, Iht, IhtConfig};
use relu_iht::mem::peak_host_bytes;
use relu_iht::operator::{Generators, Operator};
use relu_iht::tasks::inr::{self, FourierFeatures, Image};
use relu_iht::tasks::mnist;
use relu_iht::Backend;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

/// Largest feature matrix this build materializes.
const MAX_FEATURE_BYTES: u64 = 4 << 30;

pub fn run(a: &InrArgs) -> Result<()> {
    let config = a.solver.to_config(100)?;
    if a.max_side == 0 {
        bail!("invalid --max-side = 0: must be at least 1");
    }
    let (image, sigma, source) = match a.mnist_digit {
        Some(index) => {
            let (_, test) = mnist::load_split(
                &a.data_dir.join("mnist"),
                &(0..10).collect::<Vec<u8>>(),
                5000,
                1000,
            )?;
            if index >= test.len() {
                bail!(
                    "invalid --mnist-digit = {index}: the test split has {} images",
                    test.len()
                );
            }
            let raw = &test.x[index * test.d..(index + 1) * test.d];
            (
                Image::gray(28, 28, raw),
                a.sigma.unwrap_or(2.0),
                format!("MNIST test digit {index}"),
            )
        }
        None => match &a.image {
            Some(path) => (
                Image::load(path, a.max_side)?,
                a.sigma.unwrap_or(5.0),
                path.display().to_string(),
            ),
            None => {
                let name = PathBuf::from("assets/camera.png (bundled)");
                let image = Image::decode(inr::BUNDLED_CAMERA, &name, a.max_side)?;
                (image, a.sigma.unwrap_or(5.0), name.display().to_string())
            }
        },
    };
    let ff = FourierFeatures::new(a.features, image.coord_dims(), sigma, config.seed)?;
    let n = image.len();
    let bytes = n as u64 * ff.dim() as u64 * 4;
    if bytes > MAX_FEATURE_BYTES {
        bail!(
            "invalid image size {} × {} × {}: {} features per sample need {bytes} bytes; lower --max-side or --features",
            image.width, image.height, image.channels, ff.dim()
        );
    }
    config.validate(n, (a.solver.m * ff.dim()) as u64)?;
    if a.out
        .extension()
        .is_none_or(|e| !e.eq_ignore_ascii_case("png"))
    {
        bail!(
            "invalid --out = {}: the reconstruction is written as PNG (use a .png name)",
            a.out.display()
        );
    }
    let xt = ff.embed(&image.coords());
    let data = Arc::new(Data::from_columns(n, ff.dim(), xt, image.pixels.clone())?);
    let engine = report::backend(
        a.solver.backend,
        a.solver.quiet || a.solver.json,
        a.solver.device_memory,
    )?;
    crate::with_engine!(engine, b => fit(a, &config, &image, data, sigma, &source, b))
}

fn fit<B: Backend>(
    a: &InrArgs,
    config: &IhtConfig,
    image: &Image,
    data: Arc<Data>,
    sigma: f32,
    source: &str,
    backend: B,
) -> Result<()> {
    let name = backend.name();
    let m = a.solver.m;
    let op = Operator::new(data.clone(), m, Generators::Random { seed: config.seed })?;
    let mut solver = Iht::new(backend, op, config.clone())?;
    let bar = report::progress(solver.total_steps(), a.solver.quiet);
    let rec = solver.solve(|st| {
        bar.set_message(format!(
            "rel. residual {:.3e}, nnz {}",
            st.rel_residual, st.nnz
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let mut be = solver.into_backend();
    let op = Operator::new(data.clone(), m, rec.generators())?;
    let pred = iht::predict(&mut be, &op, &rec.x)?;
    let recon = image.with_pixels(&pred);
    let psnr = inr::psnr(&image.pixels, &recon.pixels);
    recon
        .save_png(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    let record = RunRecord {
        task: "inr",
        method: "iht",
        backend: name,
        n: data.n(),
        d: data.d(),
        m,
        s: config.s,
        k: 1,
        layers: 1,
        steps: rec.steps,
        seed: config.seed,
        nnz: rec.x.nnz(),
        seconds: rec.seconds,
        peak_host_bytes: peak_host_bytes(),
        peak_device_bytes: rec.peak_device_bytes,
        extra: json!({
            "image": source,
            "width": image.width,
            "height": image.height,
            "channels": image.channels,
            "sigma": sigma,
            "psnr": psnr,
            "out": a.out.display().to_string(),
            "neurons": rec.x.neurons(data.d()).len(),
        }),
    };
    if a.solver.json {
        return record.print();
    }
    println!(
        "INR of {source} ({} × {} × {}): {} samples, {} Fourier features (σ = {sigma}), m = {m}, s = {}",
        image.width, image.height, image.channels, data.n(), data.d(), config.s
    );
    println!(
        "{} nonzeros in {} neurons after {} steps in {:.2} s; PSNR {:.2} dB; wrote {}",
        rec.x.nnz(),
        rec.x.neurons(data.d()).len(),
        rec.steps,
        rec.seconds,
        psnr,
        a.out.display()
    );
    Ok(())
}
