//! Figures as PNG or SVG (chosen by the file extension) with `plotters`: ROC curves of several
//! models with their AUC and CI in the legend, a t-SNE scatter coloured by group, a reliability
//! diagram, and lines with error bars (a metric against a budget, e.g. a label-efficiency curve).
//! Files are written atomically.
//!
//! Text is rendered through plotters' `ttf` feature, which looks up the "sans-serif" family with
//! fontconfig; on a machine without any system font, drawing returns [`EvalError::Plot`] naming the
//! file rather than panicking.

use crate::atomic;
use crate::calibration::Calibration;
use crate::delong::ConfidenceInterval;
use crate::error::{check_same_len, EvalError, Result};
use crate::roc::RocCurve;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Image size in pixels used by every figure.
pub const FIGURE_SIZE: (u32, u32) = (800, 700);

/// Okabe–Ito colour-blind-safe palette.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

/// Colour of series `i` (the palette repeats after eight).
pub fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One model's ROC curve for [`plot_roc`].
#[derive(Debug, Clone)]
pub struct RocSeries {
    /// Model name shown in the legend.
    pub name: String,
    /// The curve.
    pub curve: RocCurve,
    /// Its AUC.
    pub auc: f64,
    /// Its CI, shown in the legend when present.
    pub ci: Option<ConfidenceInterval>,
}

impl RocSeries {
    /// The legend text: `name (AUC 0.824 [0.720-0.930])`.
    pub fn legend(&self) -> String {
        match self.ci {
            Some(ci) => format!(
                "{} (AUC {:.3} [{:.3}-{:.3}])",
                self.name, self.auc, ci.low, ci.high
            ),
            None => format!("{} (AUC {:.3})", self.name, self.auc),
        }
    }
}

enum Format {
    Png,
    Svg,
}

fn format_of(path: &Path) -> Result<Format> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => Err(EvalError::Plot {
            path: path.to_path_buf(),
            reason: "unsupported extension: use .png or .svg".into(),
        }),
    }
}

/// A drawing routine usable with both backends.
trait Figure {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>;
}

fn render_figure<T: Figure>(path: &Path, fig: &T) -> Result<()> {
    let plot_err = |reason: String| EvalError::Plot {
        path: path.to_path_buf(),
        reason,
    };
    match format_of(path)? {
        Format::Png => {
            let tmp = atomic::temp_file(path)?;
            {
                let root = BitMapBackend::new(tmp.path(), FIGURE_SIZE).into_drawing_area();
                fig.draw(&root)
                    .and_then(|_| root.present())
                    .map_err(|e| plot_err(e.to_string()))?;
            }
            atomic::commit(tmp, path)
        }
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, FIGURE_SIZE).into_drawing_area();
                fig.draw(&root)
                    .and_then(|_| root.present())
                    .map_err(|e| plot_err(e.to_string()))?;
            }
            atomic::write(path, svg.as_bytes())
        }
    }
}

struct RocFigure<'a> {
    title: &'a str,
    series: &'a [RocSeries],
}

impl Figure for RocFigure<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, ("sans-serif", 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("False positive rate (1 - specificity)")
            .y_desc("True positive rate (sensitivity)")
            .label_style(("sans-serif", 16))
            .draw()?;
        chart.draw_series(LineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            ShapeStyle::from(&RGBColor(170, 170, 170)).stroke_width(1),
        ))?;
        for (i, s) in self.series.iter().enumerate() {
            let color = series_color(i);
            chart
                .draw_series(LineSeries::new(
                    s.curve.fpr.iter().copied().zip(s.curve.tpr.iter().copied()),
                    color.stroke_width(2),
                ))?
                .label(s.legend())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

/// Draws ROC curves of several models (with AUC and CI in the legend) to a `.png` or `.svg` file.
pub fn plot_roc(path: impl AsRef<Path>, title: &str, series: &[RocSeries]) -> Result<()> {
    if series.is_empty() {
        return Err(EvalError::Empty { what: "series" });
    }
    render_figure(path.as_ref(), &RocFigure { title, series })
}

struct ScatterFigure<'a> {
    title: &'a str,
    points: &'a [[f64; 2]],
    groups: &'a [usize],
    names: &'a [&'a str],
}

impl Figure for ScatterFigure<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for p in self.points {
            for d in 0..2 {
                lo[d] = lo[d].min(p[d]);
                hi[d] = hi[d].max(p[d]);
            }
        }
        let pad = |d: usize| ((hi[d] - lo[d]) * 0.05).max(1e-9);
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, ("sans-serif", 26))
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(
                (lo[0] - pad(0))..(hi[0] + pad(0)),
                (lo[1] - pad(1))..(hi[1] + pad(1)),
            )?;
        chart
            .configure_mesh()
            .x_desc("t-SNE 1")
            .y_desc("t-SNE 2")
            .label_style(("sans-serif", 14))
            .draw()?;
        for (g, name) in self.names.iter().enumerate() {
            let color = series_color(g);
            chart
                .draw_series(
                    self.points
                        .iter()
                        .zip(self.groups)
                        .filter(|(_, &pg)| pg == g)
                        .map(|(p, _)| Circle::new((p[0], p[1]), 3, color.mix(0.75).filled())),
                )?
                .label(*name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

/// Draws a 2-D scatter (e.g. a t-SNE embedding) coloured by group; `groups[i]` indexes `names`.
pub fn plot_scatter(
    path: impl AsRef<Path>,
    title: &str,
    points: &[[f64; 2]],
    groups: &[usize],
    names: &[&str],
) -> Result<()> {
    check_same_len("points", points.len(), "groups", groups.len())?;
    if points.is_empty() {
        return Err(EvalError::Empty { what: "points" });
    }
    let flat: Vec<f64> = points.iter().flat_map(|p| p.iter().copied()).collect();
    crate::error::check_finite("points", &flat)?;
    if let Some(&g) = groups.iter().find(|&&g| g >= names.len()) {
        return Err(EvalError::InvalidParameter {
            name: "groups",
            reason: format!("group {g} has no name ({} names given)", names.len()),
        });
    }
    render_figure(
        path.as_ref(),
        &ScatterFigure {
            title,
            points,
            groups,
            names,
        },
    )
}

struct ReliabilityFigure<'a> {
    title: &'a str,
    calibration: &'a Calibration,
}

impl Figure for ReliabilityFigure<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let c = self.calibration;
        let caption = format!("{} (ECE {:.3}, Brier {:.3})", self.title, c.ece, c.brier);
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("Mean predicted probability")
            .y_desc("Fraction of positives")
            .label_style(("sans-serif", 16))
            .draw()?;
        // Bin frequencies as faint bars, scaled to the fullest bin.
        let max_count = c.bins.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
        chart.draw_series(c.bins.iter().map(|b| {
            Rectangle::new(
                [(b.lower, 0.0), (b.upper, 0.25 * b.count as f64 / max_count)],
                RGBColor(200, 200, 200).mix(0.6).filled(),
            )
        }))?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                ShapeStyle::from(&RGBColor(150, 150, 150)).stroke_width(1),
            ))?
            .label("perfectly calibrated")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(150, 150, 150)));
        let pts: Vec<(f64, f64)> = c
            .bins
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| (b.mean_predicted, b.fraction_positive))
            .collect();
        let color = series_color(0);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label("model")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

/// One point of a [`LineSeries`]-style curve with an error bar from `low` to `high`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorBarPoint {
    /// Position on the x axis.
    pub x: f64,
    /// The value (e.g. a mean over seeds).
    pub y: f64,
    /// Lower end of the bar.
    pub low: f64,
    /// Upper end of the bar.
    pub high: f64,
}

/// A named curve for [`plot_error_bars`].
#[derive(Debug, Clone)]
pub struct ErrorBarSeries {
    /// Legend text.
    pub name: String,
    /// The points, drawn in order.
    pub points: Vec<ErrorBarPoint>,
}

/// Axes of [`plot_error_bars`].
#[derive(Debug, Clone, Copy)]
pub struct ErrorBarAxes<'a> {
    /// Title of the figure.
    pub title: &'a str,
    /// Label of the x axis.
    pub x_label: &'a str,
    /// Label of the y axis.
    pub y_label: &'a str,
    /// Logarithmic x axis (budgets that double).
    pub log_x: bool,
    /// A dashed horizontal reference line (e.g. 0 for a difference).
    pub reference_y: Option<f64>,
}

struct ErrorBarFigure<'a> {
    axes: ErrorBarAxes<'a>,
    series: &'a [ErrorBarSeries],
}

impl ErrorBarFigure<'_> {
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in pts {
            x0 = x0.min(p.x);
            x1 = x1.max(p.x);
            y0 = y0.min(p.low);
            y1 = y1.max(p.high);
        }
        if let Some(r) = self.axes.reference_y {
            y0 = y0.min(r);
            y1 = y1.max(r);
        }
        let pad_y = ((y1 - y0) * 0.08).max(1e-3);
        let (x0, x1) = if self.axes.log_x {
            (x0.ln() - 0.15, x1.ln() + 0.15)
        } else {
            let pad = ((x1 - x0) * 0.05).max(0.5);
            (x0 - pad, x1 + pad)
        };
        ((x0, x1), (y0 - pad_y, y1 + pad_y))
    }
}

impl Figure for ErrorBarFigure<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let ((x0, x1), (y0, y1)) = self.ranges();
        let log = self.axes.log_x;
        let tx = move |x: f64| if log { x.ln() } else { x };
        let mut chart = ChartBuilder::on(root)
            .caption(self.axes.title, ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(self.axes.x_label)
            .y_desc(self.axes.y_label)
            .x_label_formatter(&|v| {
                let x = if log { v.exp() } else { *v };
                format!("{x:.0}")
            })
            .label_style(("sans-serif", 16))
            .draw()?;
        if let Some(r) = self.axes.reference_y {
            chart.draw_series(DashedLineSeries::new(
                [(x0, r), (x1, r)],
                6,
                4,
                ShapeStyle::from(&RGBColor(120, 120, 120)).stroke_width(1),
            ))?;
        }
        // Series side by side at each x, so that their bars do not hide each other.
        let k = self.series.len().max(1) as f64;
        let width = (x1 - x0) * 0.012;
        for (i, s) in self.series.iter().enumerate() {
            let color = series_color(i);
            let dx = (i as f64 - (k - 1.0) / 2.0) * width;
            let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (tx(p.x) + dx, p.y)).collect();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(s.points.iter().map(|p| {
                let x = tx(p.x) + dx;
                PathElement::new(vec![(x, p.low), (x, p.high)], color.stroke_width(2))
            }))?;
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

/// Draws curves with error bars (one per series, slightly offset along x so bars stay visible) to a
/// `.png` or `.svg` file. Errors on no points, non-finite values, a bar that does not contain its
/// point, or a non-positive x on a logarithmic axis.
pub fn plot_error_bars(
    path: impl AsRef<Path>,
    axes: ErrorBarAxes<'_>,
    series: &[ErrorBarSeries],
) -> Result<()> {
    let pts: Vec<&ErrorBarPoint> = series.iter().flat_map(|s| s.points.iter()).collect();
    if pts.is_empty() {
        return Err(EvalError::Empty { what: "points" });
    }
    let flat: Vec<f64> = pts.iter().flat_map(|p| [p.x, p.y, p.low, p.high]).collect();
    crate::error::check_finite("points", &flat)?;
    if let Some(p) = pts.iter().find(|p| !(p.low <= p.y && p.y <= p.high)) {
        return Err(EvalError::InvalidParameter {
            name: "points",
            reason: format!(
                "the bar [{}, {}] at x = {} does not contain its value {}",
                p.low, p.high, p.x, p.y
            ),
        });
    }
    if axes.log_x && pts.iter().any(|p| p.x <= 0.0) {
        return Err(EvalError::InvalidParameter {
            name: "points",
            reason: "a logarithmic x axis needs positive x".into(),
        });
    }
    render_figure(path.as_ref(), &ErrorBarFigure { axes, series })
}

/// Draws a reliability diagram (calibration curve over bin frequencies).
pub fn plot_reliability(
    path: impl AsRef<Path>,
    title: &str,
    calibration: &Calibration,
) -> Result<()> {
    render_figure(path.as_ref(), &ReliabilityFigure { title, calibration })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration::calibration;
    use crate::delong::{delong, CiMethod};
    use crate::roc::roc_curve;

    fn series() -> Vec<RocSeries> {
        let y = [true, true, true, false, false, false, true, false];
        let a = [0.9, 0.8, 0.3, 0.4, 0.2, 0.1, 0.7, 0.75];
        let b = [0.6, 0.5, 0.7, 0.4, 0.6, 0.2, 0.2, 0.1];
        [("model A", a), ("model B", b)]
            .iter()
            .map(|(name, s)| {
                let d = delong(&y, s).unwrap();
                RocSeries {
                    name: name.to_string(),
                    curve: roc_curve(&y, s, true).unwrap(),
                    auc: d.auc,
                    ci: d.ci(0.95, CiMethod::Plain),
                }
            })
            .collect()
    }

    #[test]
    fn writes_png_and_svg_with_text() {
        let dir = tempfile::tempdir().unwrap();
        let s = series();
        let png = dir.path().join("roc.png");
        plot_roc(&png, "ROC", &s).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let svg = dir.path().join("roc.svg");
        plot_roc(&svg, "ROC", &s).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg"));
        assert!(text.contains(&s[0].legend()));
        // Only the two outputs remain: no temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn legend_shows_ci() {
        let s = &series()[0];
        let l = s.legend();
        assert!(l.starts_with("model A (AUC "));
        assert!(l.contains('['));
    }

    #[test]
    fn error_bars_draw_and_reject_bad_points() {
        let dir = tempfile::tempdir().unwrap();
        let point = |x: f64, y: f64| ErrorBarPoint {
            x,
            y,
            low: y - 0.05,
            high: y + 0.05,
        };
        let series = [
            ErrorBarSeries {
                name: "a".into(),
                points: vec![point(25.0, 0.1), point(50.0, 0.0), point(100.0, -0.05)],
            },
            ErrorBarSeries {
                name: "b".into(),
                points: vec![point(25.0, 0.02), point(100.0, 0.01)],
            },
        ];
        let axes = ErrorBarAxes {
            title: "AUC difference",
            x_label: "labelled X-rays",
            y_label: "difference",
            log_x: true,
            reference_y: Some(0.0),
        };
        let svg = dir.path().join("e.svg");
        plot_error_bars(&svg, axes, &series).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("labelled X-rays"));
        plot_error_bars(dir.path().join("e.png"), axes, &series).unwrap();
        let mut bad = series.clone();
        bad[0].points[1].low = 0.5;
        let e = plot_error_bars(&svg, axes, &bad).unwrap_err().to_string();
        assert!(e.contains("does not contain"), "{e}");
        let mut zero = series.clone();
        zero[1].points[0].x = 0.0;
        assert!(plot_error_bars(&svg, axes, &zero).is_err());
        assert!(plot_error_bars(&svg, axes, &[]).is_err());
    }

    #[test]
    fn scatter_and_reliability() {
        let dir = tempfile::tempdir().unwrap();
        let pts = [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [0.5, 0.5]];
        plot_scatter(
            dir.path().join("t.svg"),
            "t-SNE",
            &pts,
            &[0, 1, 2, 1],
            &["generated", "real CTPA", "CXR"],
        )
        .unwrap();
        assert!(matches!(
            plot_scatter(
                dir.path().join("t.svg"),
                "t",
                &pts,
                &[0, 1, 5, 1],
                &["a", "b"]
            ),
            Err(EvalError::InvalidParameter { .. })
        ));
        let cal = calibration(&[true, false, true, false], &[0.9, 0.2, 0.6, 0.4], 5).unwrap();
        plot_reliability(dir.path().join("r.png"), "Calibration", &cal).unwrap();
        assert!(matches!(
            plot_reliability(dir.path().join("r.jpg"), "Calibration", &cal),
            Err(EvalError::Plot { .. })
        ));
    }
}
