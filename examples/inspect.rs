//! Prints the geometry and intensity statistics of a medical image.
//!
//! ```text
//! cargo run --release --example inspect -- PATH [--json]
//! ```
//! PATH is a DICOM file, a folder holding a DICOM series, a NIfTI file (`.nii`, `.nii.gz`) or a
//! PNG/JPEG image. Patient names and identifiers are never read into the printed facts.

use std::path::{Path, PathBuf};

use clap::Parser;
use med_io::transforms::{axcodes, HounsfieldUnits};
use med_io::{Image2d, Intensity, Volume};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    about = "Geometry and intensity statistics of a DICOM file/series, NIfTI or PNG/JPEG image"
)]
struct Args {
    /// DICOM file, DICOM series folder, NIfTI file or PNG/JPEG image.
    path: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn stats(min: f32, max: f32, mean: f64) -> Value {
    json!({ "min": min, "max": max, "mean": mean })
}

fn describe_volume(kind: &str, v: &Volume) -> Result<Value, med_io::Error> {
    let g = v.geometry();
    let (lo, hi, mean) = v.stats().unwrap_or((f32::NAN, f32::NAN, f64::NAN));
    let mut out = json!({
        "kind": kind,
        "shape": v.dims(),
        "spacing_mm": g.spacing,
        "origin_mm_lps": g.origin,
        "direction": g.direction,
        "axcodes": axcodes(g),
        "extent_mm": v.extent_mm(),
        "modality": v.meta.modality,
        "rescale": { "slope": v.meta.rescale_slope, "intercept": v.meta.rescale_intercept },
        "values": stats(lo, hi, mean),
    });
    let is_ct =
        v.meta.modality.as_deref() == Some("CT") || v.meta.intensity == Intensity::Hounsfield;
    if is_ct {
        let hu = HounsfieldUnits::default().apply(v)?;
        if let Some((a, b, m)) = hu.stats() {
            out["hounsfield"] = stats(a, b, m);
        }
    }
    Ok(out)
}

fn describe_image(kind: &str, img: &Image2d, extra: Value) -> Value {
    let (lo, hi, mean) = img.stats().unwrap_or((f32::NAN, f32::NAN, f64::NAN));
    let mut out = json!({
        "kind": kind,
        "shape": [img.width(), img.height()],
        "spacing_mm": img.spacing,
        "values": stats(lo, hi, mean),
    });
    if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    out
}

fn inspect(path: &Path) -> Result<Value, med_io::Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if path.is_dir() {
        let v = med_io::read_dicom_series(path)?;
        return describe_volume("dicom-series", &v);
    }
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        let h = med_io::nifti_io::read_nifti_header(path)?;
        let frames: usize = h.dims.iter().skip(3).product();
        let v = med_io::read_nifti_frame(path, 0)?;
        let mut out = describe_volume(&format!("nifti-{}", h.version), &v)?;
        out["frames"] = json!(frames);
        out["nifti"] = json!({ "datatype": h.datatype, "qform_code": h.qform_code, "sform_code": h.sform_code,
                               "scl_slope": h.scl_slope, "scl_inter": h.scl_inter });
        return Ok(out);
    }
    if [".png", ".jpg", ".jpeg"].iter().any(|e| name.ends_with(e)) {
        let (img, depth) = med_io::read_raster(path)?;
        let bits = match depth {
            med_io::StoredDepth::Eight => 8,
            med_io::StoredDepth::Sixteen => 16,
        };
        return Ok(describe_image("raster", &img, json!({ "bits": bits })));
    }
    let h = med_io::read_dicom_header(path)?;
    if matches!(h.modality.as_deref(), Some("CR" | "DX" | "MG")) {
        let (img, voi) = med_io::read_cxr_dicom(path)?;
        return Ok(describe_image(
            "dicom-radiograph",
            &img,
            json!({ "modality": h.modality, "photometric": h.photometric, "voi": format!("{voi:?}"),
                    "transfer_syntax": h.transfer_syntax }),
        ));
    }
    let v = med_io::read_dicom_file(path)?;
    let mut out = describe_volume("dicom-file", &v)?;
    out["transfer_syntax"] = json!(h.transfer_syntax);
    out["photometric"] = json!(h.photometric);
    Ok(out)
}

fn print_text(v: &Value) {
    let fmt = |x: &Value| x.to_string();
    println!("kind       {}", v["kind"].as_str().unwrap_or("?"));
    for key in [
        "shape",
        "spacing_mm",
        "origin_mm_lps",
        "axcodes",
        "extent_mm",
        "modality",
        "frames",
        "bits",
        "photometric",
        "transfer_syntax",
        "voi",
    ] {
        if let Some(x) = v.get(key).filter(|x| !x.is_null()) {
            println!("{key:<10} {}", fmt(x));
        }
    }
    let s = &v["values"];
    println!(
        "values     min {} max {} mean {}",
        s["min"], s["max"], s["mean"]
    );
    if let Some(hu) = v.get("hounsfield") {
        println!(
            "HU range   min {} max {} mean {}",
            hu["min"], hu["max"], hu["mean"]
        );
    }
}

fn main() {
    let args = Args::parse();
    match inspect(&args.path) {
        Ok(v) => {
            if args.json {
                use std::io::Write;
                // A closed pipe (`| head`) is not an error worth a panic.
                let _ = writeln!(
                    std::io::stdout(),
                    "{}",
                    serde_json::to_string_pretty(&v).expect("json values serialise")
                );
            } else {
                print_text(&v);
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
