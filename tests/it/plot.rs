//! Figures: PNGs decode, cells carry the viridis colour of their value (checked against
//! matplotlib's own table, not our colour map), missing cells are grey, text renders with the
//! bundled font, bad inputs are refused before anything is written, and writes leave no litter.

use relu_iht::plot::{curves_png, heatmap_layout, heatmap_png, Curves, Heatmap, Layout};
use std::path::{Path, PathBuf};

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("relu-iht-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load(path: &Path) -> image::RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()))
        .to_rgb8()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// matplotlib's viridis at 0, ¼, ½, ¾, 1 (`#440154 #3b528b #21918c #5ec962 #fde725`).
const VIRIDIS_REF: [(f64, [u8; 3]); 5] = [
    (0.0, [68, 1, 84]),
    (0.25, [59, 82, 139]),
    (0.5, [33, 145, 140]),
    (0.75, [94, 201, 98]),
    (1.0, [253, 231, 37]),
];

/// Our colour map interpolates 8 stops of viridis linearly; at the quartiles that is within 3
/// of matplotlib's 256-entry table per channel, plus rounding: 8 leaves margin and still tells
/// every reference colour apart from its neighbours (they differ by ≥ 35 in some channel).
const TOL: i32 = 8;

fn assert_color(img: &image::RgbImage, (x, y): (u32, u32), want: [u8; 3], what: &str) {
    let got = img.get_pixel(x, y).0;
    let diff = (0..3)
        .map(|i| (got[i] as i32 - want[i] as i32).abs())
        .max()
        .unwrap();
    assert!(
        diff <= TOL,
        "{what} at ({x}, {y}): got {got:?}, expected {want:?}, channel difference {diff} > {TOL}"
    );
}

/// 3 rows × 4 columns on colour limits [10, 30]; reference fractions and one cell not run.
fn grid_map(annotate: bool) -> Heatmap {
    let v = |x: f64| Some(x);
    let mut map = Heatmap::new(
        "IHT, L = 1",
        vec![1.0, 10.0, 100.0],
        vec![1.0, 2.0, 5.0, 1000.0],
        vec![
            v(10.0),  // 0
            v(15.0),  // ¼
            v(20.0),  // ½
            v(25.0),  // ¾
            v(30.0),  // 1
            v(-50.0), // clamped to 0
            v(99.0),  // clamped to 1
            None,
            v(10.0),
            v(10.0),
            v(30.0),
            v(30.0),
        ],
    );
    map.vmin = 10.0;
    map.vmax = 30.0;
    map.colorbar_label = "PSNR (dB)".to_string();
    map.annotate = annotate;
    map
}

#[test]
fn heatmap_cells_have_the_viridis_colour_of_their_value() {
    let dir = tempdir("cells");
    let path = dir.join("cells.png");
    let map = grid_map(false);
    let layout = heatmap_png(&path, std::slice::from_ref(&map)).unwrap();
    let img = load(&path);
    assert_eq!((img.width(), img.height()), (layout.width, layout.height));
    assert!((500..=800).contains(&img.width()) && (400..=700).contains(&img.height()));
    assert_eq!(files_in(&dir), ["cells.png"], "no temporary file is left");

    let cells = &layout.panels[0].cells;
    assert_eq!(cells.len(), 12);
    for (i, (t, want)) in VIRIDIS_REF.iter().enumerate() {
        assert_color(
            &img,
            cells[i].center(),
            *want,
            &format!("cell {i} (t = {t})"),
        );
    }
    assert_color(
        &img,
        cells[5].center(),
        VIRIDIS_REF[0].1,
        "value below vmin",
    );
    assert_color(
        &img,
        cells[6].center(),
        VIRIDIS_REF[4].1,
        "value above vmax",
    );

    // The cell not run is grey (hatched in a darker grey): neutral, neither white nor black.
    let r = cells[7];
    for (x, y) in [r.center(), ((r.x0 + 3) as u32, (r.y0 + 5) as u32)] {
        let [red, g, b] = img.get_pixel(x, y).0;
        assert!(
            red == g && g == b && (100..=230).contains(&red),
            "missing cell pixel ({x}, {y}) is {:?}, expected grey",
            [red, g, b]
        );
    }

    // Small m at the bottom: row 0 lies below row 2; columns run left to right.
    assert!(cells[0].y0 > cells[8].y1 - 1 && cells[0].x1 <= cells[1].x0);

    // The colour bar runs from vmin (bottom) to vmax (top).
    let bar = layout.panels[0].colorbar;
    let mid = ((bar.x0 + bar.x1) / 2) as u32;
    assert_color(
        &img,
        (mid, bar.y0 as u32),
        VIRIDIS_REF[4].1,
        "colour bar top",
    );
    assert_color(
        &img,
        (mid, (bar.y1 - 1) as u32),
        VIRIDIS_REF[0].1,
        "colour bar bottom",
    );
    let half = ((bar.y0 + bar.y1 - 1) / 2) as u32;
    assert_color(&img, (mid, half), VIRIDIS_REF[2].1, "colour bar middle");
}

#[test]
fn heatmap_cells_tile_the_grid_without_gaps() {
    let map = Heatmap::new(
        "tiling",
        (1..=7).map(f64::from).collect(),
        (1..=13).map(f64::from).collect(),
        vec![Some(0.5); 7 * 13],
    );
    let layout: Layout = heatmap_layout(&[map]).unwrap();
    let cells = &layout.panels[0].cells;
    for r in 0..7 {
        for c in 0..13 {
            let cell = cells[r * 13 + c];
            assert!(
                cell.width() > 0 && cell.height() > 0,
                "cell ({r}, {c}) is empty"
            );
            if c + 1 < 13 {
                assert_eq!(cell.x1, cells[r * 13 + c + 1].x0, "gap right of ({r}, {c})");
            }
            if r + 1 < 7 {
                assert_eq!(cell.y0, cells[(r + 1) * 13 + c].y1, "gap above ({r}, {c})");
            }
        }
    }
}

#[test]
fn small_grids_print_each_value_in_a_contrasting_colour() {
    let dir = tempdir("annotate");
    // Count pixels inside the middle half of a cell that are far from the cell's fill:
    // white-ish on the dark minimum cell, dark on the yellow maximum cell.
    let count = |annotate: bool| {
        let path = dir.join(format!("annotate-{annotate}.png"));
        let layout = heatmap_png(&path, &[grid_map(annotate)]).unwrap();
        let img = load(&path);
        let cells = &layout.panels[0].cells;
        let inner = |i: usize, pred: &dyn Fn([u8; 3]) -> bool| {
            let r = cells[i];
            let (qw, qh) = (r.width() / 4, r.height() / 4);
            (r.y0 + qh..r.y1 - qh)
                .flat_map(|y| (r.x0 + qw..r.x1 - qw).map(move |x| (x as u32, y as u32)))
                .filter(|&(x, y)| pred(img.get_pixel(x, y).0))
                .count()
        };
        let light = inner(0, &|p| p.iter().map(|&c| c as u32).sum::<u32>() > 600);
        let dark = inner(4, &|p| p.iter().map(|&c| c as u32).sum::<u32>() < 200);
        // Away from the text, the fill is untouched.
        let r = cells[0];
        assert_color(
            &img,
            ((r.x0 + 2) as u32, (r.y0 + 2) as u32),
            VIRIDIS_REF[0].1,
            "corner",
        );
        (light, dark)
    };
    let (light, dark) = count(true);
    assert!(
        light > 15,
        "only {light} light text pixels on the dark cell"
    );
    assert!(dark > 15, "only {dark} dark text pixels on the yellow cell");
    assert_eq!(count(false), (0, 0), "no text without annotations");
}

#[test]
fn text_renders_with_the_bundled_font() {
    let dir = tempdir("text");
    let path = dir.join("text.png");
    let mut map = grid_map(false);
    let layout = heatmap_png(&path, &[map.clone()]).unwrap();
    let img = load(&path);
    // The strip above the grid, as wide as the grid (the colour bar's top label is beside it).
    let cells = &layout.panels[0].cells;
    let (top, x0, x1) = (cells[8].y0 as u32, cells[8].x0 as u32, cells[11].x1 as u32);
    let dark_in_title = |img: &image::RgbImage| {
        (0..top - 2) // above the grid's frame line
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 100))
            .count()
    };
    let with_title = dark_in_title(&img);
    assert!(with_title > 60, "title strip has {with_title} dark pixels");
    map.title.clear();
    heatmap_png(&path, &[map]).unwrap();
    assert_eq!(
        dark_in_title(&load(&path)),
        0,
        "an empty title draws nothing"
    );
}

#[test]
fn side_by_side_heatmaps_make_a_wider_figure() {
    let dir = tempdir("pair");
    let one = heatmap_png(&dir.join("one.png"), &[grid_map(false)]).unwrap();
    let mut imp = grid_map(false);
    imp.title = "IMP, L = 1".to_string();
    let two = heatmap_png(&dir.join("two.png"), &[grid_map(false), imp]).unwrap();
    let (a, b) = (load(&dir.join("one.png")), load(&dir.join("two.png")));
    assert_eq!(a.height(), b.height());
    assert_eq!(b.width(), 2 * a.width());
    assert_eq!((two.width, two.panels.len()), (b.width(), 2));
    // The second panel is the first moved right by one panel width.
    for (c1, c2) in one.panels[0].cells.iter().zip(&two.panels[1].cells) {
        assert_eq!((c2.x0 - c1.x0, c2.y0), (a.width() as i32, c1.y0));
    }
    assert_color(
        &b,
        two.panels[1].cells[4].center(),
        VIRIDIS_REF[4].1,
        "panel 2 max",
    );
}

fn phase_curves() -> Curves {
    Curves {
        title: "Exact recovery".to_string(),
        x_label: "n".to_string(),
        y_label: "fraction of seeds recovered".to_string(),
        x: vec![100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0],
        series: vec![
            (
                "s = 10".to_string(),
                vec![
                    Some(0.0),
                    Some(0.33),
                    Some(1.0),
                    Some(1.0),
                    Some(1.0),
                    Some(1.0),
                ],
            ),
            (
                "s = 100".to_string(),
                vec![
                    Some(0.0),
                    Some(0.0),
                    None,
                    Some(0.33),
                    Some(0.67),
                    Some(1.0),
                ],
            ),
        ],
        log_x: true,
        y_range: (0.0, 1.0),
        join_gaps: false,
    }
}

#[test]
fn curves_png_decodes_and_draws_every_series() {
    let dir = tempdir("curves");
    let path = dir.join("curves.png");
    for log_x in [false, true] {
        let curves = Curves {
            log_x,
            ..phase_curves()
        };
        curves_png(&path, &curves).unwrap();
        let img = load(&path);
        assert!((500..=900).contains(&img.width()) && (400..=700).contains(&img.height()));
        // tab10 blue and orange, the first two series colours (markers and lines).
        for (name, want) in [("s = 10", [31u8, 119, 180]), ("s = 100", [255, 127, 14])] {
            let n = img
                .pixels()
                .filter(|p| (0..3).all(|i| (p.0[i] as i32 - want[i] as i32).abs() <= 10))
                .count();
            assert!(
                n > 150,
                "series {name}: only {n} pixels of its colour (log_x {log_x})"
            );
        }
    }
    assert_eq!(files_in(&dir), ["curves.png"]);
}

#[test]
fn bad_inputs_are_refused_naming_the_value() {
    let dir = tempdir("bad");
    let path = dir.join("bad.png");
    let heat_err = |map: Heatmap| heatmap_png(&path, &[map]).unwrap_err().to_string();

    let mut short = grid_map(false);
    short.values.pop();
    let msg = heat_err(short);
    assert!(
        msg.contains("heatmap values") && msg.contains("expected 12, got 11"),
        "{msg}"
    );
    let mut empty = grid_map(false);
    (empty.rows, empty.values) = (vec![], vec![]);
    assert!(heat_err(empty).contains("heatmap rows = 0"));
    let mut limits = grid_map(false);
    limits.vmax = limits.vmin;
    let msg = heat_err(limits);
    assert!(msg.contains("vmin = 10 (vmax = 10)"), "{msg}");
    let mut nan = grid_map(false);
    nan.values[5] = Some(f64::NAN);
    let msg = heat_err(nan);
    assert!(msg.contains("NaN at row 1, column 1"), "{msg}");
    let msg = heatmap_png(&path, &[]).unwrap_err().to_string();
    assert!(msg.contains("heatmaps = 0"), "{msg}");

    let curve_err = |c: Curves| curves_png(&path, &c).unwrap_err().to_string();
    let mut c = phase_curves();
    c.series[1].1.push(Some(1.0));
    let msg = curve_err(c);
    assert!(
        msg.contains("series length") && msg.contains("expected 6, got 7"),
        "{msg}"
    );
    let mut c = phase_curves();
    c.y_range = (1.0, 0.0);
    assert!(curve_err(c).contains("y_range = (1, 0)"));
    let mut c = phase_curves();
    c.x[0] = 0.0;
    assert!(curve_err(c).contains("curves x = 0"));
    let mut c = phase_curves();
    c.x.clear();
    c.series.clear();
    assert!(curve_err(c).contains("curves x = none"));

    assert!(
        files_in(&dir).is_empty(),
        "refused inputs wrote {:?}",
        files_in(&dir)
    );
}

#[test]
fn unwritable_paths_error_and_leave_no_temporary_file() {
    let dir = tempdir("unwritable");
    // A folder where the PNG should go: the temporary file is written, the rename fails.
    let blocked = dir.join("blocked.png");
    std::fs::create_dir(&blocked).unwrap();
    let msg = heatmap_png(&blocked, &[grid_map(true)])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("blocked.png"), "{msg}");
    let err = curves_png(&blocked, &phase_curves()).unwrap_err();
    assert!(err.to_string().contains("blocked.png"), "{err}");
    assert_eq!(
        files_in(&dir),
        ["blocked.png"],
        "temporary files left behind"
    );
    assert!(std::fs::read_dir(&blocked).unwrap().next().is_none());

    // A missing folder: nothing can be created at all.
    let missing = dir.join("no-such-dir").join("fig.png");
    let msg = heatmap_png(&missing, &[grid_map(true)])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no-such-dir"), "{msg}");
    assert_eq!(files_in(&dir), ["blocked.png"]);

    // Rewriting an existing figure replaces it whole.
    let ok = dir.join("ok.png");
    std::fs::write(&ok, b"not a png").unwrap();
    heatmap_png(&ok, &[grid_map(true)]).unwrap();
    load(&ok);
    assert_eq!(files_in(&dir), ["blocked.png", "ok.png"]);
}

#[test]
fn paper_sized_grid_renders() {
    // Figure 1's grid (10 × 10, categorical 1 … 1000) with cells s > m·d not run.
    let grid = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
    let values: Vec<Option<f64>> = (0..100)
        .map(|i| {
            let (m, s) = (grid[i / 10], grid[i % 10]);
            (s <= m * 5.0).then(|| 10.0 + 50.0 * (m / (m + s)))
        })
        .collect();
    let mut iht = Heatmap::new("IHT", grid.to_vec(), grid.to_vec(), values.clone());
    let mut imp = Heatmap::new("IMP", grid.to_vec(), grid.to_vec(), values);
    for map in [&mut iht, &mut imp] {
        (map.vmin, map.vmax) = (10.0, 60.0);
        map.colorbar_label = "PSNR (dB)".to_string();
    }
    let dir = tempdir("paper");
    let path = dir.join("figure-1.png");
    let layout = heatmap_png(&path, &[iht, imp]).unwrap();
    let img = load(&path);
    assert_eq!((img.width(), img.height()), (layout.width, layout.height));
    let not_run = layout.panels[0].cells[9]; // m = 1, s = 1000
    let [r, g, b] = img.get_pixel(not_run.center().0, not_run.center().1).0;
    assert!(r == g && g == b, "cell not run is {:?}", [r, g, b]);
}
