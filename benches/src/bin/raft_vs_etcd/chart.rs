//! throughput.png: committed writes/s against client concurrency, one line per system.
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::register_font;
use std::path::Path;

pub struct Series {
    pub label: String,
    /// (clients, writes/s)
    pub points: Vec<(f64, f64)>,
}

/// Draws `series` into `png`. Text is rendered with the TrueType font at `font` (plotters'
/// ab_glyph backend has no font of its own).
pub fn draw(png: &Path, font: &Path, title: &str, series: &[Series]) -> Result<()> {
    // register_font keeps the bytes for the life of the process.
    let bytes: &'static [u8] = Box::leak(std::fs::read(font)?.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{}: not a usable TrueType font", font.display()))?;

    let clients: Vec<f64> = {
        let mut c: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        c.sort_by(f64::total_cmp);
        c.dedup();
        c
    };
    let x_max = clients.last().copied().unwrap_or(64.0) * 1.4;
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        * 1.15;

    let root = BitMapBackend::new(png, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(85)
        .build_cartesian_2d(
            (0.75f64..x_max)
                .log_scale()
                .with_key_points(clients.clone()),
            0f64..y_max.max(1.0),
        )?;
    chart
        .configure_mesh()
        .x_desc("concurrent clients (log scale)")
        .y_desc("committed writes/s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    let colors = [
        RGBColor(200, 60, 40),
        RGBColor(30, 90, 200),
        RGBColor(20, 150, 70),
    ];
    for (i, s) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(3),
            ))?
            .label(s.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        chart.draw_series(
            s.points
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 5, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
