//! The sweep's loop: the runs still missing from the CSV, run one by one, then the figures.

use super::args::{BackendChoice, Figure, Method, SweepArgs, Task, TeacherChoice};
use super::draw::{draw_heatmaps, draw_phase, memory_table};
use super::plan::{metric_of, plan, teacher_name, without_overridden};
use super::store::{append_rows, read_rows, row_from, run_cell, Key, Row};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;

/// Method, teacher, arguments, cells filled, and the row of a diverged one-cell run.
type Job = (Method, String, Vec<String>, usize, Option<Row>);

pub fn run(a: &SweepArgs) -> Result<()> {
    let created = !a.out.exists();
    let result = run_in(a);
    // A sweep that failed leaves no empty results folder of its own making behind.
    if result.is_err() && created {
        let _ = std::fs::remove_dir(&a.out);
    }
    result
}

fn run_in(a: &SweepArgs) -> Result<()> {
    let p = plan(a)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create --out {}", a.out.display()))?;
    let csv_path = a.out.join(format!("{}.csv", p.name));
    let done: BTreeSet<Key> = read_rows(&csv_path)?.iter().map(Row::key).collect();
    let backend = match a.backend {
        BackendChoice::Auto => "auto",
        BackendChoice::Gpu => "gpu",
        BackendChoice::Cpu => "cpu",
    };
    // The runs still to do: IHT per cell, IMP per (layers, n, m, seed) with its missing budgets.
    // Each job: method, teacher, arguments, cells it fills, and for one-cell jobs the row that
    // records a diverged run (NaN, drawn at the bottom of the scale).
    let mut jobs: Vec<Job> = Vec::new();
    let diverged = |method: Method, teacher: &str, layers, n, m, s, seed| Row {
        task: p.task,
        method,
        teacher: teacher.to_string(),
        layers,
        n,
        m,
        s,
        seed,
        metric: metric_of(p.task).to_string(),
        value: f64::NAN,
        weight_error: None,
        nnz: 0,
        steps: 0,
        seconds: f64::NAN,
        peak_host_bytes: 0,
        peak_device_bytes: 0,
        backend: "diverged".to_string(),
    };
    for &teacher in &p.teachers {
        let tn = teacher_name(teacher);
        for &layers in &p.layers {
            for &n in &p.ns {
                for &m in &p.ms {
                    for &seed in &p.seeds {
                        let mut base = without_overridden(&p.args, &a.extra);
                        for (flag, v) in [
                            ("--m", m.to_string()),
                            ("--seed", seed.to_string()),
                            ("--layers", layers.to_string()),
                            ("--backend", backend.to_string()),
                        ] {
                            base.extend([flag.to_string(), v]);
                        }
                        if n > 0 {
                            base.extend(["--n".to_string(), n.to_string()]);
                        }
                        if a.vary.is_some() {
                            base.extend(["--teacher".to_string(), tn.to_string()]);
                            if teacher == TeacherChoice::Convex {
                                // The theory's setting: the solver's own fixed random masks.
                                base.extend(["--mode".to_string(), "convex".to_string()]);
                            }
                        }
                        base.extend(["--json".to_string(), "--quiet".to_string()]);
                        base.extend(a.extra.iter().cloned());
                        for &method in &a.method {
                            let missing: Vec<usize> =
                                p.ss.iter()
                                    .copied()
                                    .filter(|&s| {
                                        !done.iter().any(|k| {
                                            k.0 == p.task
                                                && k.1 == method
                                                && k.2 == tn
                                                && k.3 == layers
                                                && (n == 0 || k.4 == n)
                                                && k.5 == m
                                                && k.6 == s
                                                && k.7 == seed
                                        })
                                    })
                                    .collect();
                            // A planted cell is its own problem (s planted weights): IMP too
                            // runs once per cell there, its budget the cell's s.
                            let per_cell = method == Method::Iht
                                || matches!(p.task, Task::Planted | Task::PlantedK);
                            if per_cell {
                                for s in missing {
                                    let mut args = base.clone();
                                    args.extend(["--s".to_string(), s.to_string()]);
                                    if method == Method::Imp {
                                        args.extend(["--method".to_string(), "imp".to_string()]);
                                        if a.imp_retrain {
                                            args.push("--imp-retrain".to_string());
                                        }
                                    }
                                    jobs.push((
                                        method,
                                        tn.to_string(),
                                        args,
                                        1,
                                        Some(diverged(method, tn, layers, n, m, s, seed)),
                                    ));
                                }
                            } else if !missing.is_empty() {
                                let mut args = base.clone();
                                let mut list: Vec<String> =
                                    missing.iter().map(|s| s.to_string()).collect();
                                if a.figure == Some(Figure::Memory) {
                                    // Memory is the dense model's: one round (the first
                                    // round meets any budget above the weight count).
                                    list = vec![u32::MAX.to_string()];
                                }
                                args.extend([
                                    "--method".to_string(),
                                    "imp".to_string(),
                                    "--imp-budgets".to_string(),
                                    list.join(","),
                                ]);
                                if a.imp_retrain {
                                    args.push("--imp-retrain".to_string());
                                }
                                jobs.push((method, tn.to_string(), args, missing.len(), None));
                            }
                        }
                    }
                }
            }
        }
    }
    if !a.plot_only && !jobs.is_empty() {
        // Every run's arguments (the extra flags after -- included) parse before the first runs:
        // a bad flag fails once, up front, not once per cell.
        for (_, _, args, _, _) in &jobs {
            let argv = std::iter::once("relu-iht".to_string()).chain(args.iter().cloned());
            if let Err(e) = <super::super::args::Cli as clap::Parser>::try_parse_from(argv) {
                bail!(
                    "invalid sweep run `relu-iht {}`: {}",
                    args.join(" "),
                    super::super::one_line(&e.render().to_string())
                );
            }
        }
        let cells: usize = jobs.iter().map(|j| j.3).sum();
        eprintln!(
            "sweep {}: {} runs ({cells} cells) to do, {} already in {}",
            p.name,
            jobs.len(),
            done.len(),
            csv_path.display()
        );
        let bar = crate::cli::report::progress(jobs.len(), false);
        let mut failed = 0usize;
        for (method, teacher, args, _, on_diverge) in &jobs {
            bar.set_message(args[..args.len().min(12)].join(" "));
            // A diverged fit is a result (NaN); a cell the model cannot hold (s above its
            // weights) stays empty: grey in the map.
            let records = match run_cell(args) {
                Ok(r) => r,
                Err(e) if format!("{e:#}").contains("diverged") && on_diverge.is_some() => {
                    bar.suspend(|| eprintln!("diverged: {e:#}"));
                    append_rows(
                        &csv_path,
                        std::slice::from_ref(on_diverge.as_ref().unwrap()),
                    )?;
                    bar.inc(1);
                    continue;
                }
                Err(e) => {
                    bar.suspend(|| eprintln!("skipped: {e:#}"));
                    failed += 1;
                    bar.inc(1);
                    continue;
                }
            };
            let rows = records
                .iter()
                .map(|v| row_from(p.task, *method, teacher, a.imp_retrain, v))
                .collect::<Result<Vec<_>>>()?;
            let mut rows = rows;
            if a.figure == Some(Figure::Memory) {
                // The memory table's IMP run stands for the grid's budget.
                for r in &mut rows {
                    r.s = p.ss[0];
                }
            }
            append_rows(&csv_path, &rows)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        if failed > 0 {
            eprintln!(
                "sweep {}: {failed} of {} runs failed (their cells stay empty)",
                p.name,
                jobs.len()
            );
        }
    }
    let rows = read_rows(&csv_path)?;
    if rows.is_empty() {
        bail!("sweep {}: no runs in {}", p.name, csv_path.display());
    }
    let written = if a.vary.is_some() {
        draw_phase(&p, &rows, &a.out)?
    } else if a.figure == Some(Figure::Memory) {
        memory_table(&rows, &a.out.join(format!("{}.md", p.name)))?
    } else {
        draw_heatmaps(&p, &rows, &a.out)?
    };
    println!("{}", csv_path.display());
    for w in written {
        println!("{}", w.display());
    }
    Ok(())
}
