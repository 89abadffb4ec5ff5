//! The sweep's figures, drawn from the CSV: heatmaps per method and depth, the IHT-vs-IMP panel,
//! the phase-transition curves, and the memory table (Markdown).

use super::args::{Method, Task};
use super::plan::{metric_of, teacher_name, Plan};
use super::store::Row;
use anyhow::Result;
use relu_iht::plot::{curves_png, heatmap_png, Curves, Heatmap};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Mean over seeds per (method, layers, m, s) of each value clamped to the colour limits.
pub(super) fn means(
    rows: &[Row],
    task: Task,
    (lo, hi): (f64, f64),
) -> BTreeMap<(Method, usize, usize, usize), f64> {
    let mut acc: BTreeMap<(Method, usize, usize, usize), (f64, usize)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.task == task) {
        let e = acc.entry((r.method, r.layers, r.m, r.s)).or_default();
        // An exact fit (+inf dB) counts as the top of the scale, a diverged run (NaN) the bottom.
        e.0 += if r.value.is_nan() {
            lo
        } else {
            r.value.clamp(lo, hi)
        };
        e.1 += 1;
    }
    acc.into_iter()
        .map(|(k, (s, c))| (k, s / c as f64))
        .collect()
}

pub(super) fn draw_heatmaps(p: &Plan, rows: &[Row], out: &Path) -> Result<Vec<PathBuf>> {
    let mean = means(rows, p.task, p.limits);
    let methods: BTreeSet<Method> = mean.keys().map(|k| k.0).collect();
    let mut written = Vec::new();
    for &layers in &p.layers {
        let mut maps = Vec::new();
        for &method in &methods {
            let values: Vec<Option<f64>> =
                p.ms.iter()
                    .flat_map(|&m| p.ss.iter().map(move |&s| (m, s)))
                    .map(|(m, s)| mean.get(&(method, layers, m, s)).copied())
                    .collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            let name = match method {
                Method::Iht => "IHT",
                Method::Imp => "IMP",
            };
            maps.push(Heatmap {
                title: format!("{name}, L = {layers}: {}", p.title),
                row_label: "m (hidden neurons)".into(),
                col_label: "s (nonzero weights)".into(),
                rows: p.ms.iter().map(|&m| m as f64).collect(),
                cols: p.ss.iter().map(|&s| s as f64).collect(),
                values,
                vmin: p.limits.0,
                vmax: p.limits.1,
                colorbar_label: metric_of(p.task).into(),
                annotate: true,
            });
        }
        for map in &maps {
            let tag = if map.title.starts_with("IHT") {
                "iht"
            } else {
                "imp"
            };
            let path = out.join(format!("{}-{tag}-L{layers}.png", p.name));
            heatmap_png(&path, std::slice::from_ref(map))?;
            written.push(path);
        }
        if maps.len() == 2 {
            let path = out.join(format!("{}-iht-vs-imp-L{layers}.png", p.name));
            heatmap_png(&path, &maps)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The phase transition: fraction of seeds with weight error < 1e-4 against n, per teacher.
pub(super) fn draw_phase(p: &Plan, rows: &[Row], out: &Path) -> Result<Vec<PathBuf>> {
    let mut series = Vec::new();
    for &t in &p.teachers {
        let tn = teacher_name(t);
        let ys =
            p.ns.iter()
                .map(|&n| {
                    let runs: Vec<&Row> = rows
                        .iter()
                        .filter(|r| r.teacher == tn && r.n == n && r.method == Method::Iht)
                        .collect();
                    (!runs.is_empty()).then(|| {
                        runs.iter()
                            .filter(|r| r.weight_error.is_some_and(|e| e < 1e-4))
                            .count() as f64
                            / runs.len() as f64
                    })
                })
                .collect();
        series.push((format!("{tn} teacher"), ys));
    }
    let (m, s) = (p.ms[0], p.ss[0]);
    let path = out.join(format!("{}.png", p.name));
    curves_png(
        &path,
        &Curves {
            title: format!(
                "Exact recovery (weight error < 1e-4), m = {m}, s = {s}, {} seeds",
                p.seeds.len()
            ),
            x_label: "n (training points)".into(),
            y_label: "fraction of seeds recovered".into(),
            x: p.ns.iter().map(|&n| n as f64).collect(),
            series,
            log_x: true,
            y_range: (0.0, 1.0),
            join_gaps: false,
        },
    )?;
    Ok(vec![path])
}

/// The memory comparison as a Markdown table: peak host bytes and accuracy of IHT and IMP per m.
pub(super) fn memory_table(rows: &[Row], path: &Path) -> Result<Vec<PathBuf>> {
    let mut by_m: BTreeMap<usize, BTreeMap<Method, &Row>> = BTreeMap::new();
    for r in rows {
        by_m.entry(r.m).or_default().insert(r.method, r);
    }
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let mut text = String::from(
        "| m | IHT peak host | IHT accuracy | IMP peak host | IMP accuracy | IMP / IHT |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (m, r) in &by_m {
        let cell = |meth: Method| {
            r.get(&meth)
                .map_or(("–".to_string(), "–".to_string()), |row| {
                    (
                        format!("{:.1} MiB", mib(row.peak_host_bytes)),
                        format!("{:.2}%", 100.0 * row.value),
                    )
                })
        };
        let (ih, ia) = cell(Method::Iht);
        let (ph, pa) = cell(Method::Imp);
        let ratio = match (r.get(&Method::Iht), r.get(&Method::Imp)) {
            (Some(i), Some(p)) => format!(
                "{:.1}×",
                p.peak_host_bytes as f64 / i.peak_host_bytes as f64
            ),
            _ => "–".into(),
        };
        text.push_str(&format!("| {m} | {ih} | {ia} | {ph} | {pa} | {ratio} |\n"));
    }
    relu_iht::atomic::write(path, text.as_bytes())?;
    Ok(vec![path.to_path_buf()])
}
