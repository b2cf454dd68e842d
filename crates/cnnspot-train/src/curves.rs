//! The run's learning curves as a PNG: training loss, and validation
//! accuracy and AP, per epoch.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::run::EpochRecord;
use crate::{write_atomic, Result, TrainError};

const SIZE: (u32, u32) = (1000, 420);

fn draw<DB: DrawingBackend>(
    records: &[EpochRecord],
    root: DrawingArea<DB, Shift>,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let last = records
        .last()
        .map(|r| r.epoch as f64)
        .unwrap_or(0.0)
        .max(1.0);

    let loss_max = records
        .iter()
        .map(|r| r.train_loss)
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption("training loss", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..last, 0f64..loss_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(
            records.iter().map(|r| (r.epoch as f64, r.train_loss)),
            RGBColor(31, 119, 180).stroke_width(2),
        ))
        .map_err(|e| e.to_string())?;

    let mut chart = ChartBuilder::on(&right)
        .caption("validation", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..last, 0f64..1.0f64)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, colour, pick) in [
        (
            "accuracy",
            RGBColor(255, 127, 14),
            (|r: &EpochRecord| r.val_accuracy) as fn(&EpochRecord) -> Option<f64>,
        ),
        ("AP", RGBColor(44, 160, 44), |r: &EpochRecord| r.val_ap),
    ] {
        chart
            .draw_series(LineSeries::new(
                records
                    .iter()
                    .filter_map(|r| pick(r).map(|v| (r.epoch as f64, v))),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Writes `curves.png` for the epochs so far.
pub fn write_png(path: &Path, records: &[EpochRecord]) -> Result<()> {
    let png = cnnspot_eval::plot::render_png(SIZE, |root| draw(records, root))
        .map_err(|why| TrainError::Config(format!("{}: cannot draw: {why}", path.display())))?;
    write_atomic(path, &png)
}
