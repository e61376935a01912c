//! Charts, as SVG: a run's loss curve, and bytes against quality for `report` and `frontier`.

use anyhow::{anyhow, Result};
use std::path::Path;

/// Training loss per step (`train`: step and batch loss; `val`, where measured: step and
/// validation loss) as an SVG.
pub fn loss_curve(train: &[(usize, f64)], val: &[(usize, f64)], path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| anyhow!("chart {}: {e}", path.display());
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let steps = train.last().map_or(1, |l| l.0).max(1);
    let losses = train
        .iter()
        .map(|l| l.1)
        .chain(val.iter().map(|v| v.1))
        .filter(|v| v.is_finite());
    let (lo, hi) = losses.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption("training loss", ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0usize..steps, (lo - pad)..(hi + pad))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss (nats/token)")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(train.iter().copied(), BLUE.mix(0.4)))
        .map_err(|e| err(&e))?
        .label("train (batch)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    // The batch loss swings with the text each batch comes from; an exponential moving
    // average (0.9) shows the trend.
    let mut ema = None;
    let smooth: Vec<(usize, f64)> = train
        .iter()
        .map(|&(step, v)| {
            let e = ema.map_or(v, |e: f64| 0.9 * e + 0.1 * v);
            ema = Some(e);
            (step, e)
        })
        .collect();
    chart
        .draw_series(LineSeries::new(smooth, BLACK.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("train (EMA 0.9)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    if !val.is_empty() {
        chart
            .draw_series(LineSeries::new(val.iter().copied(), RED.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

/// A labelled scatter of `(label, bytes, y)` points, bytes on the x axis in MB, as SVG.
pub fn scatter_svg(
    caption: &str,
    y_desc: &str,
    points: &[(String, u64, f64)],
    curves: &[(&str, &[(u64, f64)])],
    path: &std::path::Path,
) -> Result<(), String> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mb = |b: u64| b as f64 / 1e6;
    let curve_points: Vec<(u64, f64)> = curves.iter().flat_map(|c| c.1.iter().copied()).collect();
    let all = points
        .iter()
        .map(|p| (p.1, p.2))
        .chain(curve_points.iter().copied());
    let (x0, x1) = all.clone().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(mb(p.0)), b.max(mb(p.0)))
    });
    let (y0, y1) = all
        .filter(|p| p.1.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (x0, x1) = if x0 > x1 || x0 <= 0.0 {
        (1e-3, 1.0)
    } else {
        (x0, x1)
    };
    let (y0, y1) = if y0 > y1 { (0.0, 1.0) } else { (y0, y1) };
    let pad = |lo: f64, hi: f64| ((hi - lo) * 0.08).max(1e-3);
    // Bytes on a log axis: f32 and 2-bit points differ by more than 10×.
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(
            ((x0 * 0.9)..(x1 * 1.6)).log_scale(),
            (y0 - pad(y0, y1))..(y1 + pad(y0, y1)),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(12)
        .x_label_formatter(&|x| format!("{x:.2}"))
        .x_desc("MB (log scale)")
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(
            points
                .iter()
                .filter(|p| p.2.is_finite())
                .enumerate()
                .map(|(i, p)| {
                    // Neighbouring schemes often sit on one spot: stagger their labels.
                    let dy = -6 - 13 * (i as i32 % 3);
                    EmptyElement::at((mb(p.1), p.2))
                        + Circle::new((0, 0), 4, BLUE.filled())
                        + PathElement::new(vec![(0, 0), (6, dy + 6)], BLUE.mix(0.3))
                        + Text::new(p.0.clone(), (6, dy), ("sans-serif", 12))
                }),
        )
        .map_err(|e| e.to_string())?;
    // Schemes over many sizes: one coloured curve each, named in the legend.
    let colours = [RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, &(name, pts)) in curves.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let mut c: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(b, v)| (mb(b), v))
            .collect();
        c.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(c.clone(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(c.iter().map(|&p| Circle::new(p, 4, colour.filled())))
            .map_err(|e| e.to_string())?;
    }
    if !curves.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
