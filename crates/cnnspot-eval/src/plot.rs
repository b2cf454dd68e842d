//! Precision-recall curves of every generator in one figure, as SVG and PNG.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::{EvalError, Result};
use crate::metrics::PrPoint;
use crate::scores::write_atomic;

/// Tableau's ten colours, cycled.
pub(crate) const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Figure size in pixels (PNG) and user units (SVG).
pub const FIGURE_SIZE: (u32, u32) = (900, 700);

/// Registers the embedded font every cnnspot figure uses (once per
/// process); call before drawing text with plotters.
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    // The bitmap backend lays out text with this embedded font, so figures
    // do not depend on the fonts installed; a failure only loses labels.
    ONCE.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// The curve as sklearn's `PrecisionRecallDisplay` draws it (steps-post
/// over the curve in its recall-decreasing order): precision `P_n` holds
/// over `(R_{n+1}, R_n]`, so the area under the line is the AP.
fn steps(curve: &[PrPoint]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(curve.len() * 2);
    let mut push = |pt: (f64, f64)| {
        // Repeated points (thresholds that add only real images keep the
        // recall) make zero-length segments, which the bitmap backend's
        // line joins turn into stray marks.
        if out.last() != Some(&pt) {
            out.push(pt);
        }
    };
    for (i, p) in curve.iter().enumerate() {
        push((p.recall, p.precision));
        if let Some(next) = curve.get(i + 1) {
            push((next.recall, p.precision));
        }
    }
    out
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    curves: &[(String, f64, Vec<PrPoint>)],
) -> std::result::Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..1.0f64, 0f64..1.02f64)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("recall")
        .y_desc("precision")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, (name, ap, curve)) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        // One element per segment: plotters' bitmap backend draws the joins
        // of a thick polyline's right angles with stray marks.
        let points = steps(curve);
        chart
            .draw_series(
                points
                    .windows(2)
                    .map(|w| PathElement::new(vec![w[0], w[1]], colour.stroke_width(2))),
            )
            .map_err(|x| e(&x))?
            .label(format!("{name} (AP {:.1})", ap * 100.0))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
    }
    if !curves.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// Renders a figure as SVG: `draw` paints on a `size` canvas (text is left
/// to the viewer's fonts). The one SVG path of every cnnspot figure.
pub fn render_svg(
    size: (u32, u32),
    draw: impl FnOnce(DrawingArea<SVGBackend<'_>, Shift>) -> std::result::Result<(), String>,
) -> std::result::Result<String, String> {
    register_fonts();
    let mut svg = String::new();
    draw(SVGBackend::with_string(&mut svg, size).into_drawing_area())?;
    Ok(svg)
}

/// Renders a figure as PNG bytes: `draw` paints on a white `size` canvas,
/// with the embedded font. The one PNG path of every cnnspot figure.
pub fn render_png(
    size: (u32, u32),
    draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, Shift>) -> std::result::Result<(), String>,
) -> std::result::Result<Vec<u8>, String> {
    register_fonts();
    let (w, h) = size;
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    draw(BitMapBackend::with_buffer(&mut buf, size).into_drawing_area())?;
    let img = image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| "the pixel buffer has the wrong size".to_string())?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|x| x.to_string())?;
    Ok(png)
}

pub(crate) fn plot_error(path: &Path) -> impl FnOnce(String) -> EvalError + '_ {
    move |why| EvalError::Plot {
        path: path.to_path_buf(),
        why,
    }
}

/// Writes the curves to `path` as SVG (text left to the viewer's fonts).
pub fn write_svg(path: &Path, title: &str, curves: &[(String, f64, Vec<PrPoint>)]) -> Result<()> {
    let svg =
        render_svg(FIGURE_SIZE, |root| draw(root, title, curves)).map_err(plot_error(path))?;
    write_atomic(path, svg.as_bytes())
}

/// Writes the curves to `path` as PNG.
pub fn write_png(path: &Path, title: &str, curves: &[(String, f64, Vec<PrPoint>)]) -> Result<()> {
    let png =
        render_png(FIGURE_SIZE, |root| draw(root, title, curves)).map_err(plot_error(path))?;
    write_atomic(path, &png)
}
