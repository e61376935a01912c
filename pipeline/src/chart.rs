//! The loss curve, drawn as SVG beside a run's outputs.

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
