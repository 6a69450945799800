//! `vigil risk report`: plots (PNG and SVG, plotters) and an HTML page that puts them together
//! with what they mean and what the model cannot do.
//!
//! Each figure is drawn once, as SVG, and rasterized into PNG by resvg with DejaVu Sans
//! compiled into the binary, so a fresh machine with no fonts installed renders the same labels
//! (plotters measures text with the same font through its `ab_glyph` feature).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use crate::ml::MlError;
use crate::ml::data::Deployments;
use crate::ml::risk::{self, Band, Bands, Measured, RiskModel, Scored};
use crate::state::plain;

const TEMPLATE: &str = include_str!("templates/report.html");

/// Files written by [`write()`].
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub html: PathBuf,
    pub plots: Vec<PathBuf>,
}

/// plotters lays out labels (caption heights, legend boxes) by measuring text with a
/// registered font; the same DejaVu Sans that renders it.
fn register_font() {
    static FONT: std::sync::Once = std::sync::Once::new();
    FONT.call_once(|| {
        for (style, bytes) in [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
        ] {
            // The font is compiled in and known to parse; a failure would only drop labels.
            let _ = plotters::style::register_font("sans-serif", style, bytes);
        }
    });
}

const GOOD: RGBColor = RGBColor(49, 130, 189);
const BAD: RGBColor = RGBColor(222, 45, 38);
const MUTED: RGBColor = RGBColor(150, 150, 150);

/// Draws one figure as `<name>.svg` and rasterizes that same SVG into `<name>.png`.
///
/// The PNG is not drawn by plotters' bitmap backend: its text drops each glyph's side bearing
/// ("R OC AUC", "memo ry_pct"). resvg shapes the text with the same compiled-in DejaVu fonts,
/// so both files show one drawing, spaced as a browser would.
fn figure(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    name: &str,
    size: (u32, u32),
    draw: impl for<'a> FnOnce(&DrawingArea<SVGBackend<'a>, Shift>) -> DrawResult<SVGBackend<'a>>,
) -> Result<(), MlError> {
    let svg_path = dir.join(format!("{name}.svg"));
    let png_path = dir.join(format!("{name}.png"));
    let svg = svg_of(&svg_path, size, draw)?;
    let png = rasterize(&svg).map_err(|e| plot_error(&png_path, e))?;
    for (path, bytes) in [(&svg_path, svg.as_bytes()), (&png_path, png.as_slice())] {
        std::fs::write(path, bytes).map_err(|source| MlError::Write {
            path: path.clone(),
            source,
        })?;
    }
    files.push(png_path);
    files.push(svg_path);
    Ok(())
}

/// The figures that need only what the model recorded of its hold-out (no data files), as SVG:
/// `confusion_matrix` and `feature_importance`, for the web page. `None` for another name.
pub fn holdout_figure(model: &RiskModel, name: &str) -> Result<Option<String>, MlError> {
    register_font();
    let measured = Measured {
        evaluation: model.holdout.clone(),
        importance: model.importance.clone(),
    };
    let at = Path::new(name);
    Ok(Some(match name {
        "confusion_matrix" => svg_of(at, (640, 520), |r| confusion(r, &measured))?,
        "feature_importance" => svg_of(at, (760, 460), |r| importance(r, &measured))?,
        _ => return Ok(None),
    }))
}

/// One figure drawn as SVG; `path` names it in an error.
fn svg_of(
    path: &Path,
    size: (u32, u32),
    draw: impl for<'a> FnOnce(&DrawingArea<SVGBackend<'a>, Shift>) -> DrawResult<SVGBackend<'a>>,
) -> Result<String, MlError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root).map_err(|e| plot_error(path, e))?;
        root.present().map_err(|e| plot_error(path, e))?;
    }
    Ok(svg)
}

/// The fonts every figure uses, loaded once: no system font is looked up, so a fresh machine
/// renders the same labels.
fn fonts() -> std::sync::Arc<resvg::usvg::fontdb::Database> {
    static FONTS: std::sync::OnceLock<std::sync::Arc<resvg::usvg::fontdb::Database>> =
        std::sync::OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = resvg::usvg::fontdb::Database::new();
            db.load_font_data(dejavu::sans::regular().to_vec());
            db.load_font_data(dejavu::sans::bold().to_vec());
            db.set_sans_serif_family("DejaVu Sans");
            std::sync::Arc::new(db)
        })
        .clone()
}

/// An SVG document as PNG bytes, at its own size.
fn rasterize(svg: &str) -> Result<Vec<u8>, String> {
    let options = resvg::usvg::Options {
        fontdb: fonts(),
        font_family: "DejaVu Sans".into(),
        ..Default::default()
    };
    let tree = resvg::usvg::Tree::from_str(svg, &options).map_err(|e| e.to_string())?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or("the figure has no area")?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| e.to_string())
}

/// An axis label.
fn tick(v: &f64) -> String {
    plain(*v, 4)
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> MlError {
    MlError::Artifact {
        path: path.to_path_buf(),
        reason: format!("drawing failed: {e}"),
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn confusion<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, m: &Measured) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let c = &m.evaluation.confusion;
    // Row 0 drawn at the top: actually kept, then actually rolled back.
    let cells = [[c.tn, c.fp], [c.fn_, c.tp]];
    let max = cells.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption("Confusion matrix (hold-out)", ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(150)
        .build_cartesian_2d((0u32..1).into_segmented(), (0u32..1).into_segmented())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(0) => "predicted kept".into(),
            SegmentValue::CenterOf(1) => "predicted rolled back".into(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(1) => "actually kept".into(),
            SegmentValue::CenterOf(0) => "actually rolled back".into(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 15))
        .draw()?;
    for (row, values) in cells.iter().enumerate() {
        for (col, &n) in values.iter().enumerate() {
            let (x, y) = (col as u32, 1 - row as u32);
            let shade = 1.0 - 0.8 * n as f64 / max;
            let color = RGBColor(
                (255.0 * shade) as u8,
                (255.0 * (0.3 + 0.7 * shade)) as u8,
                255,
            );
            chart.draw_series(std::iter::once(Rectangle::new(
                [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ],
                color.filled(),
            )))?;
            let text_color = if shade < 0.5 { &WHITE } else { &BLACK };
            chart.draw_series(std::iter::once(Text::new(
                n.to_string(),
                (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                ("sans-serif", 28)
                    .into_font()
                    .color(text_color)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            )))?;
        }
    }
    Ok(())
}

fn importance<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, m: &Measured) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let imp = &m.importance;
    let n = imp.len();
    let top = imp.iter().map(|i| i.auc_drop + i.std).fold(0.01, f64::max) * 1.15;
    let low = imp.iter().map(|i| i.auc_drop - i.std).fold(0.0, f64::min);
    let names: Vec<String> = imp.iter().map(|i| i.feature.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Permutation importance: ROC AUC lost when shuffled",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(130)
        .build_cartesian_2d(low..top, -0.5..(n as f64 - 0.5))?;
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&|v: &f64| {
            let i = v.round();
            if (v - i).abs() < 0.01 && i >= 0.0 {
                // Most important at the top.
                names
                    .get(n.saturating_sub(1 + i as usize))
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_label_formatter(&tick)
        .x_desc("drop of ROC AUC")
        .draw()?;
    chart.draw_series(imp.iter().enumerate().map(|(k, i)| {
        let y = (n - 1 - k) as f64;
        Rectangle::new([(0.0, y - 0.35), (i.auc_drop, y + 0.35)], GOOD.filled())
    }))?;
    chart.draw_series(imp.iter().enumerate().map(|(k, i)| {
        let y = (n - 1 - k) as f64;
        PathElement::new(
            vec![(i.auc_drop - i.std, y), (i.auc_drop + i.std, y)],
            BLACK.stroke_width(2),
        )
    }))?;
    Ok(())
}

/// Correct and incorrect hold-out predictions over the two most important features.
fn scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    names: &[String],
    hold: &Deployments,
    probs: &[f64],
    threshold: f64,
    (fx, fy): (usize, usize),
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let xs: Vec<f64> = hold.x.column(fx).to_vec();
    let ys: Vec<f64> = hold.x.column(fy).to_vec();
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.05).max(1e-6);
        (lo - pad)..(hi + pad)
    };
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Hold-out predictions over {} and {}", names[fx], names[fy]),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(range(&xs), range(&ys))?;
    chart
        .configure_mesh()
        .x_desc(names[fx].as_str())
        .y_desc(names[fy].as_str())
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .draw()?;
    let labels = hold.labels();
    let correct = |i: &usize| (probs[*i] > threshold) == labels[*i];
    chart
        .draw_series(
            (0..xs.len())
                .filter(correct)
                .map(|i| Circle::new((xs[i], ys[i]), 3, GOOD.mix(0.5).filled())),
        )?
        .label("correct")
        .legend(|(x, y)| Circle::new((x, y), 4, GOOD.filled()));
    chart
        .draw_series(
            (0..xs.len())
                .filter(|i| !correct(i))
                .map(|i| Cross::new((xs[i], ys[i]), 4, BAD.stroke_width(2))),
        )?
        .label("incorrect")
        .legend(|(x, y)| Cross::new((x, y), 4, BAD.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// Each candidate's value of each feature against the history's distribution.
fn candidates<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    names: &[String],
    history: &Deployments,
    scored: &[Scored],
    new: &Deployments,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.draw(&Text::new(
        "New deployments (markers) against the history (bars)",
        (15, 10),
        ("sans-serif", 20),
    ))?;
    // One panel per feature and one for the key, three to a row.
    let panels = body.split_evenly(((names.len() + 1).div_ceil(3), 3));
    for (f, panel) in panels.iter().enumerate().take(names.len()) {
        let values: Vec<f64> = history.x.column(f).to_vec();
        let cand: Vec<f64> = new.x.column(f).to_vec();
        let lo = values
            .iter()
            .chain(&cand)
            .copied()
            .fold(f64::INFINITY, f64::min);
        let hi = values
            .iter()
            .chain(&cand)
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let bins = 30;
        let width = ((hi - lo) / bins as f64).max(1e-9);
        let mut counts = vec![0u32; bins];
        for v in &values {
            counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
        }
        // Headroom above the tallest bar for three lanes of candidate markers.
        let top = f64::from(counts.iter().copied().max().unwrap_or(1)).max(1.0) * 1.5;
        let mut chart = ChartBuilder::on(panel)
            .caption(names[f].as_str(), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(25)
            .y_label_area_size(40)
            .build_cartesian_2d(lo..(hi + width), 0.0..top)?;
        chart
            .configure_mesh()
            .x_labels(4)
            .y_labels(3)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style(("sans-serif", 10))
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(b, &c)| {
            let x0 = lo + b as f64 * width;
            Rectangle::new(
                [(x0, 0.0), (x0 + width, f64::from(c))],
                MUTED.mix(0.5).filled(),
            )
        }))?;
        for marker in markers(&cand, scored, (hi - lo) * 0.06) {
            let y = top * (0.9 - 0.1 * marker.lane as f64);
            chart.draw_series(std::iter::once(
                EmptyElement::at((marker.value, y))
                    + TriangleMarker::new((0, 0), 6, band_color(marker.band).filled())
                    + Text::new(
                        marker.label,
                        (0, -8),
                        ("sans-serif", 10)
                            .into_font()
                            .color(&BLACK)
                            .pos(Pos::new(HPos::Center, VPos::Bottom)),
                    ),
            ))?;
        }
    }
    // The key: each marker's number is the candidate's row in the scored file.
    let key: Vec<&DrawingArea<DB, Shift>> = panels.iter().skip(names.len()).collect();
    let per_column = 16;
    for (column, area) in key.iter().enumerate() {
        let rows = scored
            .iter()
            .enumerate()
            .skip(column * per_column)
            .take(per_column);
        for (line, (k, s)) in rows.enumerate() {
            let y = 20 + 15 * line as i32;
            area.draw(&TriangleMarker::new(
                (20, y),
                5,
                band_color(s.band).filled(),
            ))?;
            area.draw(&Text::new(
                format!("{} {} ({})", k + 1, s.deployment_id, s.band.as_str()),
                (32, y - 6),
                ("sans-serif", 11),
            ))?;
        }
    }
    if scored.len() > key.len() * per_column
        && let Some(last) = key.last()
    {
        last.draw(&Text::new(
            format!(
                "… and {} more (see the table)",
                scored.len() - key.len() * per_column
            ),
            (20, 20 + 15 * per_column as i32),
            ("sans-serif", 11),
        ))?;
    }
    Ok(())
}

fn band_color(band: Band) -> RGBColor {
    match band {
        Band::Block => BAD,
        Band::Review => RGBColor(230, 150, 0),
        Band::Proceed => GOOD,
    }
}

/// One triangle above a histogram: the candidates (numbered from 1) at about this value.
struct Marker {
    value: f64,
    /// The most severe band among them.
    band: Band,
    label: String,
    /// 0, 1 or 2: rows above the bars, so that neighbours do not hide each other.
    lane: usize,
}

/// Candidates closer than a quarter of `gap` share one marker ("2,6,9"); markers closer than
/// `gap` go to different lanes (past three, the least crowded lane is reused).
fn markers(values: &[f64], scored: &[Scored], gap: f64) -> Vec<Marker> {
    const LANES: usize = 3;
    const NAMED: usize = 4;
    let mut order: Vec<usize> = (0..values.len().min(scored.len())).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in order {
        match groups.last_mut() {
            Some(g) if values[i] - values[g[0]] < gap / 4.0 => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    let mut last = [f64::NEG_INFINITY; LANES];
    groups
        .into_iter()
        .map(|mut g| {
            g.sort_unstable();
            let value = values[g[0]];
            let lane = (0..LANES)
                .find(|&l| value - last[l] >= gap)
                .unwrap_or_else(|| {
                    (0..LANES)
                        .min_by(|&a, &b| last[a].total_cmp(&last[b]))
                        .unwrap_or(0)
                });
            last[lane] = value;
            let mut label: Vec<String> =
                g.iter().take(NAMED).map(|i| (i + 1).to_string()).collect();
            if g.len() > NAMED {
                label.push("…".into());
            }
            Marker {
                value,
                band: g
                    .iter()
                    .map(|&i| scored[i].band)
                    .max()
                    .unwrap_or(Band::Proceed),
                label: label.join(","),
                lane,
            }
        })
        .collect()
}

/// Weekly mean predicted risk and actual rollback rate, with the training cutoff.
fn over_time<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    weeks: &[(f64, f64, f64)],
    start: DateTime<Utc>,
    cutoff_day: f64,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let last = weeks.last().map_or(7.0, |w| w.0 + 7.0);
    let top = weeks.iter().map(|w| w.1.max(w.2)).fold(0.1, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Risk over time: weekly mean predicted risk and actual rollback rate",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..last, 0.0..top)?;
    chart
        .configure_mesh()
        .x_labels(8)
        .x_label_formatter(&|d: &f64| {
            (start + chrono::Duration::days(*d as i64))
                .format("%Y-%m-%d")
                .to_string()
        })
        .y_label_formatter(&|v: &f64| format!("{:.0}%", 100.0 * v))
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            weeks.iter().map(|w| (w.0, w.2)),
            MUTED.stroke_width(2),
        ))?
        .label("actual rollback rate")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MUTED.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            weeks.iter().map(|w| (w.0, w.1)),
            BAD.stroke_width(2),
        ))?
        .label("mean predicted risk")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BAD.stroke_width(2)));
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(cutoff_day, 0.0), (cutoff_day, top)],
            BLACK.stroke_width(1),
        )))?
        .label("training cutoff (hold-out to the right)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}

/// Writes the plots and `report.html` into `dir`.
pub fn write(
    dir: &Path,
    version: &str,
    model: &RiskModel,
    (history, history_file): (&Deployments, &Path),
    new: &Deployments,
    bands: &Bands,
) -> Result<Written, MlError> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|source| MlError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let hold = model.unseen(history, history_file, false)?;
    let measured = risk::evaluate(model, &hold);
    let hold_probs = model.predict_proba(hold.x.view()).to_vec();
    let scored = model.score(new, bands);
    let top2 = {
        let idx = |name: &str| model.features.iter().position(|f| f == name);
        let mut it = measured.importance.iter().filter_map(|i| idx(&i.feature));
        let last = model.features.len().saturating_sub(1);
        (it.next().unwrap_or(0), it.next().unwrap_or(1).min(last))
    };
    let (weeks, start, cutoff_day) = weekly(model, history);

    let mut plots = Vec::new();
    figure(dir, &mut plots, "confusion_matrix", (640, 520), |r| {
        confusion(r, &measured)
    })?;
    figure(dir, &mut plots, "feature_importance", (760, 460), |r| {
        importance(r, &measured)
    })?;
    figure(dir, &mut plots, "predictions_scatter", (800, 600), |r| {
        scatter(
            r,
            &model.features,
            &hold,
            &hold_probs,
            model.threshold,
            top2,
        )
    })?;
    figure(dir, &mut plots, "new_deployments", (1000, 820), |r| {
        candidates(r, &model.features, history, &scored, new)
    })?;
    figure(dir, &mut plots, "risk_over_time", (1000, 480), |r| {
        over_time(r, &weeks, start, cutoff_day)
    })?;

    let svg =
        |name: &str| std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap_or_default();
    let e = &measured.evaluation;
    let best = model.search.best();
    let template_error = |e: minijinja::Error| MlError::Artifact {
        path: dir.join("report.html"),
        reason: format!("the report template failed: {e}"),
    };
    let mut env = minijinja::Environment::new();
    env.add_filter("plain", |v: f64, decimals: Option<usize>| {
        plain(v, decimals.unwrap_or(2))
    });
    // Named *.html so values are HTML-escaped (deployment ids come from the user's CSV).
    env.add_template("report.html", TEMPLATE)
        .map_err(template_error)?;
    let html = env
        .get_template("report.html")
        .map_err(template_error)?
        .render(minijinja::context! {
                model => risk::MODEL_NAME,
                version => version,
                generated => Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
                training => minijinja::Value::from(minijinja::value::Serde(&model.training)),
                cutoff => model.training.cutoff.format("%Y-%m-%d").to_string(),
                best => minijinja::Value::from(minijinja::value::Serde(best)),
                cv_folds => model.search.folds,
                grid_points => model.search.scored.len(),
                eval => minijinja::Value::from(minijinja::value::Serde(e)),
                flagged => e.confusion.tp + e.confusion.fp,
                rollbacks => e.confusion.tp + e.confusion.fn_,
                baseline => minijinja::Value::from(minijinja::value::Serde(&model.baseline)),
                importance => minijinja::Value::from(minijinja::value::Serde(&measured.importance)),
                scored => minijinja::Value::from(minijinja::value::Serde(&scored)),
                bands => minijinja::Value::from(minijinja::value::Serde(bands)),
                top1 => model.features.get(top2.0).cloned().unwrap_or_default(),
                top2 => model.features.get(top2.1).cloned().unwrap_or_default(),
                svg_confusion => svg("confusion_matrix"),
                svg_importance => svg("feature_importance"),
                svg_scatter => svg("predictions_scatter"),
                svg_new => svg("new_deployments"),
                svg_time => svg("risk_over_time"),
        })
        .map_err(template_error)?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, html).map_err(|source| MlError::Write {
        path: html_path.clone(),
        source,
    })?;
    Ok(Written {
        html: html_path,
        plots,
    })
}

/// (day offset of the week, mean predicted risk, actual rollback rate) per week of history,
/// the first day, and the cutoff's day offset.
fn weekly(model: &RiskModel, history: &Deployments) -> (Vec<(f64, f64, f64)>, DateTime<Utc>, f64) {
    let start = history
        .timestamps
        .iter()
        .min()
        .copied()
        .unwrap_or_else(Utc::now);
    let probs = model.predict_proba(history.x.view());
    let labels = history.labels();
    let mut weeks: std::collections::BTreeMap<i64, (f64, f64, f64)> = Default::default();
    for (i, t) in history.timestamps.iter().enumerate() {
        let w = (*t - start).num_days() / 7;
        let e = weeks.entry(w).or_default();
        e.0 += probs[i];
        e.1 += f64::from(u8::from(labels.get(i).copied().unwrap_or(false)));
        e.2 += 1.0;
    }
    let weeks = weeks
        .into_iter()
        .map(|(w, (p, y, n))| (w as f64 * 7.0, p / n, y / n))
        .collect();
    let cutoff = (model.training.cutoff - start).num_hours() as f64 / 24.0;
    (weeks, start, cutoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(bands: &[Band]) -> Vec<Scored> {
        bands
            .iter()
            .enumerate()
            .map(|(i, &band)| Scored {
                deployment_id: format!("d{i}"),
                service: "s".into(),
                probability: 0.5,
                band,
                drivers: Vec::new(),
                unfamiliar: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn candidates_at_one_value_share_a_marker_and_neighbours_take_other_lanes() {
        use Band::*;
        let s = scored(&[Proceed, Block, Proceed, Review, Proceed]);
        // 1 and 3 sit on the same value; 4 is a near neighbour of them; 2 and 5 stand alone.
        let m = markers(&[10.0, 90.0, 10.0, 12.0, 50.0], &s, 8.0);
        let summary: Vec<(&str, usize, Band)> = m
            .iter()
            .map(|m| (m.label.as_str(), m.lane, m.band))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("1,3", 0, Proceed),
                ("4", 1, Review),
                ("5", 0, Proceed),
                ("2", 0, Block)
            ]
        );
        // A shared marker takes the most severe band of its candidates, and long lists are cut.
        let s = scored(&[Proceed, Block, Proceed, Proceed, Proceed, Proceed]);
        let m = markers(&[1.0; 6], &s, 8.0);
        assert_eq!(
            (m.len(), m[0].label.as_str(), m[0].band),
            (1, "1,2,3,4,…", Block)
        );
    }
}
