//! Render a DiffDRR-style digitally reconstructed radiograph of a CT.
//!
//! ```text
//! cargo run --release --example drr -- CT.nii.gz --out drr.png [--preset readme|rspect] [--size 224]
//!     [--sdd MM] [--pixels N] [--delx MM] [--rot Z,X,Y] [--trans X,Y,Z] [--pa] [--trilinear N] [--bone 1.0]
//! cargo run --release --example drr -- --synthetic --out drr.png      # a synthetic chest phantom
//! ```
//! The PNG is scaled from 0 to the image maximum (16-bit).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use med_io::drr::{render_hu, resize_antialiased, DrrGeometry, Orientation, Renderer};
use med_io::synthetic::Cohort;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Preset {
    /// DiffDRR README: sdd 1020 mm, 200 px of 2 mm, AP, translation (0, 850, 0).
    Readme,
    /// Cahan et al.'s RSPECT DRRs: sdd 1200 mm, 512 px of 1 mm (resize with --size 224).
    Rspect,
}

/// Render a DRR of a CT volume (NIfTI) with DiffDRR's camera model.
#[derive(Debug, Parser)]
struct Args {
    /// CT volume in Hounsfield units (.nii or .nii.gz).
    ct: Option<PathBuf>,
    /// Render a synthetic chest phantom (seed 0) instead of reading a file.
    #[arg(long)]
    synthetic: bool,
    /// Output PNG.
    #[arg(long, default_value = "drr.png")]
    out: PathBuf,
    /// Camera preset; the flags below override it.
    #[arg(long, value_enum, default_value = "readme")]
    preset: Preset,
    /// Source-to-detector distance (mm).
    #[arg(long)]
    sdd: Option<f64>,
    /// Detector size in pixels (square).
    #[arg(long)]
    pixels: Option<usize>,
    /// Detector pixel size (mm).
    #[arg(long)]
    delx: Option<f64>,
    /// Euler angles z,x,y in radians (ZXY convention).
    #[arg(long, value_delimiter = ',', num_args = 3)]
    rot: Option<Vec<f64>>,
    /// Translation x,y,z in mm.
    #[arg(long, value_delimiter = ',', num_args = 3, allow_hyphen_values = true)]
    trans: Option<Vec<f64>>,
    /// Posterior-anterior orientation (pair with --trans 0,-850,0).
    #[arg(long)]
    pa: bool,
    /// Trilinear renderer with this many samples per ray (default: Siddon).
    #[arg(long)]
    trilinear: Option<usize>,
    /// DiffDRR's bone_attenuation_multiplier.
    #[arg(long, default_value_t = 1.0)]
    bone: f32,
    /// Resize the result to SIZE x SIZE (antialiased, as torchvision).
    #[arg(long)]
    size: Option<usize>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let ct = match (&args.ct, args.synthetic) {
        (Some(path), false) => med_io::read_nifti(path)?,
        (None, true) => Cohort::new(Default::default())?.patient(0)?.ct,
        _ => return Err("give a CT path or --synthetic (not both)".into()),
    };
    let mut g = match args.preset {
        Preset::Readme => DrrGeometry::diffdrr_readme(),
        Preset::Rspect => DrrGeometry::rspect_xray2ctpa(),
    };
    if let Some(v) = args.sdd {
        g.sdd = v;
    }
    if let Some(n) = args.pixels {
        g.height = n;
        g.width = n;
    }
    if let Some(d) = args.delx {
        g.delx = d;
        g.dely = d;
    }
    if let Some(r) = &args.rot {
        g.rotation = [r[0], r[1], r[2]];
    }
    if let Some(t) = &args.trans {
        g.translation = [t[0], t[1], t[2]];
    }
    if args.pa {
        g.orientation = Orientation::Pa;
    }
    let renderer = args.trilinear.map_or(Renderer::Siddon, |n| Renderer::Trilinear { n_points: n });
    let start = std::time::Instant::now();
    let mut img = render_hu(&ct, &g, renderer, args.bone)?;
    let elapsed = start.elapsed();
    if let Some(s) = args.size {
        img = resize_antialiased(&img, s, s)?;
    }
    let (_, hi, mean) = img.stats().ok_or("empty image")?;
    med_io::write_png(&img, &args.out, med_io::PngDepth::Sixteen, (0.0, hi.max(f32::MIN_POSITIVE)))?;
    println!(
        "{}x{} DRR of a {:?} CT in {:.1} ms: max {hi:.2}, mean {mean:.2} -> {}",
        img.width(),
        img.height(),
        ct.dims(),
        elapsed.as_secs_f64() * 1e3,
        args.out.display()
    );
    Ok(())
}
