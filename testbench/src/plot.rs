//! SVG plots of profiler results (plotters): a title, the system model as a subtitle
//! (wrapped, never over the chart), axes labelled with what was measured.

use crate::Exit;
use crate::profile_dma::{Direction, DmaCase};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Checks `--plot` before a profile runs: the format follows the extension (`.svg`;
/// PNG needs plotters' bitmap backend, which this build leaves out) and the file must
/// be writable.
pub fn check_path(path: &Path) -> Result<(), Exit> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => {}
        Some("png") => {
            return Err(Exit::Usage(format!(
                "--plot {}: PNG needs plotters' bitmap backend, which this gmem is built without; use a .svg path",
                path.display()
            )));
        }
        _ => {
            return Err(Exit::Usage(format!(
                "--plot {}: the format follows the extension and only .svg is supported",
                path.display()
            )));
        }
    }
    std::fs::File::create(path).map_err(|e| {
        Exit::Usage(format!("--plot {}: cannot write the plot: {e}; pick a writable path", path.display()))
    })?;
    Ok(())
}

/// The legend name of a direction.
pub fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::H2d => "host→device",
        Direction::D2h => "device→host",
        Direction::D2d => "device→device",
        Direction::Both => "both directions at once",
        Direction::H2dLone => "host→device, one descriptor alone",
        Direction::H2dLoneRing => "host→device, one descriptor alone, fetched from the ring",
    }
}

/// 4096 → "4K", 2 MiB → "2M".
fn size_label(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

/// Splits `text` into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().map_or(0, |l| l.chars().count());
        if last > 0 && last + 1 + word.chars().count() > width {
            lines.push(String::new());
        }
        if let Some(l) = lines.last_mut() {
            if !l.is_empty() {
                l.push(' ');
            }
            l.push_str(word);
        }
    }
    lines
}

/// Draws the title and the wrapped model subtitle; returns the area below them.
fn header<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    title: &str,
    model: &str,
) -> Result<DrawingArea<SVGBackend<'a>, Shift>, String> {
    let lines = wrap(&format!("model: {model}"), 150);
    let height = 34 + 16 * lines.len() as u32 + 8;
    let (top, rest) = root.split_vertically(height);
    top.draw(&Text::new(title.to_string(), (14, 8), ("sans-serif", 22))).map_err(|e| e.to_string())?;
    for (i, l) in lines.iter().enumerate() {
        top.draw(&Text::new(
            l.clone(),
            (14, 36 + 16 * i as i32),
            ("sans-serif", 12).into_font().color(&BLACK.mix(0.7)),
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(rest)
}

/// Efficiency vs transfer size, one line per direction, x on a log scale ticked at the
/// measured sizes.
pub fn dma_efficiency(cases: &[DmaCase], model: &str, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let area = header(&root, "RTL DMA efficiency vs transfer size (co-simulation)", model)?;
    let mut sizes: Vec<u64> = cases.iter().map(|c| c.size_bytes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let (lo, hi) = (*sizes.first().unwrap_or(&4096) as f64, *sizes.last().unwrap_or(&4096) as f64);
    let mut chart = ChartBuilder::on(&area)
        .margin(14)
        .x_label_area_size(56)
        .y_label_area_size(64)
        .build_cartesian_2d((lo / 1.6..hi * 1.6).log_scale(), 0.0f64..1.05)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .x_max_light_lines(0)
        .x_desc("bytes per descriptor (log scale; ticks at the measured sizes)")
        .y_desc("efficiency = bytes/cycle ÷ link payload peak")
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    // Ticks at the measured sizes: a light vertical line and the size under the axis.
    for &s in &sizes {
        let x = s as f64;
        chart.draw_series(LineSeries::new([(x, 0.0), (x, 1.05)], BLACK.mix(0.12))).map_err(|e| e.to_string())?;
        let (px, py) = chart.backend_coord(&(x, 0.0));
        root.draw(&Text::new(
            size_label(s),
            (px, py + 6),
            TextStyle::from(("sans-serif", 13).into_font()).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Top,
            )),
        ))
        .map_err(|e| e.to_string())?;
    }
    let palette = [
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0x94, 0x67, 0xbd),
    ];
    for (i, dir) in [Direction::H2d, Direction::D2h, Direction::D2d, Direction::Both].into_iter().enumerate() {
        let pts: Vec<(f64, f64)> =
            cases.iter().filter(|c| c.direction == dir).map(|c| (c.size_bytes as f64, c.efficiency)).collect();
        if pts.is_empty() {
            continue;
        }
        let color = palette[i];
        let style = color.stroke_width(2);
        let line = chart.draw_series(LineSeries::new(pts.clone(), style)).map_err(|e| e.to_string())?;
        let name = direction_name(dir);
        // A distinct marker per series: circle, triangle, cross, square.
        macro_rules! with_marker {
            ($mk:expr) => {{
                line.label(name).legend(move |(x, y)| {
                    EmptyElement::at((x, y)) + PathElement::new(vec![(0, 0), (22, 0)], style) + $mk((11, 0))
                });
                chart.draw_series(pts.iter().map(|&p| EmptyElement::at(p) + $mk((0, 0)))).map_err(|e| e.to_string())?;
            }};
        }
        match i {
            0 => with_marker!(|c| Circle::new(c, 5, color.filled())),
            1 => with_marker!(|c| TriangleMarker::new(c, 6, color.filled())),
            2 => with_marker!(|c| Cross::new(c, 5, color.stroke_width(2))),
            _ => with_marker!(|(x, y): (i32, i32)| Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], color.filled())),
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The ratio figures of `gmem profile faults` as horizontal bars (speedups and the
/// per-fault cost are on their own scales, so only the efficiency-like ratios in [0, 1]
/// are drawn; the rest are listed under the chart, wrapped).
pub fn fault_figures(figures: &[crate::profile_faults::Figure], model: &str, path: &Path) -> Result<(), String> {
    let ratios: Vec<&crate::profile_faults::Figure> =
        figures.iter().filter(|f| f.name.ends_with("efficiency")).collect();
    let others: Vec<String> = figures
        .iter()
        .filter(|f| !f.name.ends_with("efficiency"))
        .map(|f| format!("{} {:.3} {}", f.name, f.value, f.unit))
        .collect();
    let foot = wrap(&others.join(" · "), 130);
    let root = SVGBackend::new(path, (1000, 460 + 16 * foot.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let area = header(&root, "Unified-memory efficiency on the RTL (fraction of the measured copy rate)", model)?;
    let (plot_area, foot_area) = area.split_vertically(area.dim_in_pixel().1 - 16 * foot.len() as u32 - 12);
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(220)
        // An integer range's segments include its end: one segment per figure.
        .build_cartesian_2d(0.0f64..1.05, (0..ratios.len().saturating_sub(1)).into_segmented())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => ratios.get(*i).map_or(String::new(), |f| f.name.to_string()),
            _ => String::new(),
        })
        .x_desc("fault-driven rate ÷ explicit DMA copy rate (same run)")
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(ratios.iter().enumerate().map(|(i, f)| {
            let mut bar = Rectangle::new(
                [(0.0, SegmentValue::Exact(i)), (f.value.min(1.05), SegmentValue::Exact(i + 1))],
                BLUE.mix(0.6).filled(),
            );
            bar.set_margin(10, 10, 0, 0);
            bar
        }))
        .map_err(|e| e.to_string())?;
    // The value at the end of each bar.
    chart
        .draw_series(ratios.iter().enumerate().map(|(i, f)| {
            Text::new(
                format!(" {:.3}", f.value),
                (f.value.min(0.95), SegmentValue::CenterOf(i)),
                TextStyle::from(("sans-serif", 13).into_font()).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                )),
            )
        }))
        .map_err(|e| e.to_string())?;
    for (i, l) in foot.iter().enumerate() {
        foot_area.draw(&Text::new(l.clone(), (14, 16 * i as i32), ("sans-serif", 12))).map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_subtitles_wrap_at_spaces() {
        let lines = wrap("aaaa bbbb cccc dddd", 9);
        assert_eq!(lines, ["aaaa bbbb", "cccc dddd"]);
        assert_eq!(size_label(4096), "4K");
        assert_eq!(size_label(2 << 20), "2M");
    }

    #[test]
    fn the_plot_format_follows_the_extension() {
        let png = check_path(Path::new("/tmp/x.png")).unwrap_err();
        assert!(matches!(png, Exit::Usage(ref e) if e.contains("bitmap backend")), "{png:?}");
        assert!(matches!(check_path(Path::new("/tmp/x.pdf")), Err(Exit::Usage(_))));
        assert!(
            matches!(check_path(Path::new("/nonexistent-dir/x.svg")), Err(Exit::Usage(ref e)) if e.contains("cannot write"))
        );
    }
}
