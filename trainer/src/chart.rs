//! The loss curve, drawn as SVG beside a run's outputs.

use crate::error::TrainError;
use crate::train::StepLog;
use std::path::Path;

/// Training loss per step (and, where measured, validation loss at its step) as an SVG.
pub fn loss_curve(
    history: &[StepLog],
    val: &[(usize, f64)],
    path: &Path,
) -> Result<(), TrainError> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| TrainError::Chart {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let steps = history.last().map_or(1, |l| l.step).max(1);
    let losses = history
        .iter()
        .map(|l| l.loss as f64)
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
        .draw_series(LineSeries::new(
            history.iter().map(|l| (l.step, l.loss as f64)),
            BLUE.mix(0.4),
        ))
        .map_err(|e| err(&e))?
        .label("train (batch)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    // The batch loss swings with the text each batch comes from; an exponential moving
    // average (0.9) shows the trend.
    let mut ema = None;
    let smooth: Vec<(usize, f64)> = history
        .iter()
        .map(|l| {
            let v = l.loss as f64;
            let e = ema.map_or(v, |e: f64| 0.9 * e + 0.1 * v);
            ema = Some(e);
            (l.step, e)
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
