//! SVG plots of profiler results (plotters).

use crate::profile_dma::{Direction, DmaCase};
use plotters::prelude::*;
use std::path::Path;

/// Efficiency vs transfer size, one line per direction.
pub fn dma_efficiency(cases: &[DmaCase], model: &str, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let max_kib = cases.iter().map(|c| c.size_bytes / 1024).max().unwrap_or(4).max(8) as f64;
    let timing = model.to_string();
    let mut chart = ChartBuilder::on(&root)
        .caption("RTL DMA efficiency vs transfer size (co-simulation)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((2.0f64..max_kib * 1.5).log_scale(), 0.0f64..1.05)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("bytes per descriptor (KiB, log scale)")
        .y_desc("efficiency = bytes/cycle ÷ link peak")
        .draw()
        .map_err(|e| e.to_string())?;
    let palette = [RED, BLUE, GREEN, MAGENTA];
    for (i, dir) in [Direction::H2d, Direction::D2h, Direction::D2d, Direction::Both].into_iter().enumerate() {
        let pts: Vec<(f64, f64)> =
            cases.iter().filter(|c| c.direction == dir).map(|c| (c.size_bytes as f64 / 1024.0, c.efficiency)).collect();
        if pts.is_empty() {
            continue;
        }
        let color = palette[i];
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(format!("{dir:?}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| e.to_string())?;
    root.draw(&Text::new(timing, (12, 500), ("sans-serif", 12))).map_err(|e| e.to_string())?;
    root.present().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The ratio figures of `gmem profile faults` as horizontal bars, each against its
/// target (speedups and the per-fault cost are on their own scales, so only the
/// efficiency-like ratios in [0, 1] are drawn; the rest are printed in the caption).
pub fn fault_figures(figures: &[crate::profile_faults::Figure], path: &Path) -> Result<(), String> {
    let ratios: Vec<&crate::profile_faults::Figure> =
        figures.iter().filter(|f| f.name.ends_with("efficiency")).collect();
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Unified-memory efficiency on the RTL (fraction of the modelled link)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(220)
        .build_cartesian_2d(0.0f64..1.05, (0..ratios.len()).into_segmented())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => ratios.get(*i).map_or(String::new(), |f| f.name.to_string()),
            _ => String::new(),
        })
        .x_desc("bytes/cycle ÷ link peak")
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(ratios.iter().enumerate().map(|(i, f)| {
            Rectangle::new(
                [(0.0, SegmentValue::Exact(i)), (f.value.min(1.05), SegmentValue::Exact(i + 1))],
                BLUE.mix(0.6).filled(),
            )
        }))
        .map_err(|e| e.to_string())?;
    let others: Vec<String> = figures
        .iter()
        .filter(|f| !f.name.ends_with("efficiency"))
        .map(|f| format!("{} {:.3}", f.name, f.value))
        .collect();
    root.draw(&Text::new(others.join("   "), (12, 400), ("sans-serif", 12))).map_err(|e| e.to_string())?;
    root.present().map_err(|e| format!("cannot write {}: {e}", path.display()))
}
