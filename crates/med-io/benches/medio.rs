//! Criterion benches for med-io's hot paths at clinical size:
//! - `preprocess_512x512x300`: the paper's CT pipeline (HU, 1 mm resampling, lung segmentation and
//!   crop, window, 128×128 axial resize) on a 512×512×300 chest phantom (0.7×0.7×1.25 mm).
//! - `read_series_300`: reading a folder of 300 512×512 int16 DICOM slices (explicit VR LE).
//!
//! Peer: `benches/peers/medio_simpleitk.py` (SimpleITK and MONAI doing the same steps).
//! Run: `cargo bench -p med-io --bench medio -- --warm-up-time 1 --measurement-time 3`

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use med_io::{CtPreprocess, Geometry, Intensity, Volume};

/// A chest phantom in stored values (HU + 1024): air outside, a soft-tissue body ellipse, two lung
/// ellipsoids at −850 HU with vessels, a spine of bone. Same formula as the Python peer.
fn phantom(nx: usize, ny: usize, nz: usize) -> Volume {
    let mut data = vec![0.0f32; nx * ny * nz];
    let plane = nx * ny;
    use rayon::prelude::*;
    data.par_chunks_mut(plane).enumerate().for_each(|(k, s)| {
        let z = (k as f64 - nz as f64 / 2.0) / (0.45 * nz as f64);
        for j in 0..ny {
            let y = (j as f64 - ny as f64 / 2.0) / ny as f64;
            for i in 0..nx {
                let x = (i as f64 - nx as f64 / 2.0) / nx as f64;
                let body = (x / 0.42).powi(2) + (y / 0.3).powi(2) < 1.0;
                let lung = |cx: f64| ((x - cx) / 0.15).powi(2) + (y / 0.2).powi(2) + z * z < 1.0;
                let vessel = ((i * 7 + j * 3) % 23) == 0;
                let spine = (x.powi(2) + (y - 0.22).powi(2)) < 0.003;
                let hu = if !body {
                    -1000.0
                } else if spine {
                    700.0
                } else if (lung(-0.2) || lung(0.2)) && !vessel {
                    -850.0
                } else {
                    40.0
                };
                s[j * nx + i] = (hu + 1024.0) as f32;
            }
        }
    });
    let mut v = Volume::new(data, [nx, ny, nz], Geometry::with_spacing([0.7, 0.7, 1.25])).unwrap();
    v.meta.rescale_intercept = -1024.0;
    v.meta.intensity = Intensity::Raw;
    v.meta.modality = Some("CT".into());
    v
}

fn write_series(dir: &Path, v: &Volume) {
    let [nx, ny, nz] = v.dims();
    for k in 0..nz {
        let px: Vec<u8> = v
            .slice(k)
            .unwrap()
            .iter()
            .flat_map(|&x| (x as i16).to_le_bytes())
            .collect();
        let uid = format!("1.2.826.0.1.3680043.8.498.77.{k}");
        let mut obj = InMemDicomObject::new_empty();
        let s = |t, vr, val: &str| DataElement::new(t, vr, PrimitiveValue::from(val));
        obj.put(s(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"));
        obj.put(s(tags::SOP_INSTANCE_UID, VR::UI, &uid));
        obj.put(s(tags::MODALITY, VR::CS, "CT"));
        obj.put(s(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.8.498.77",
        ));
        obj.put(DataElement::new(
            tags::INSTANCE_NUMBER,
            VR::IS,
            PrimitiveValue::from(format!("{}", nz - k)),
        ));
        obj.put(s(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            &format!("-179.2\\-179.2\\{:.2}", k as f64 * 1.25),
        ));
        obj.put(s(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            "1\\0\\0\\0\\1\\0",
        ));
        obj.put(s(tags::PIXEL_SPACING, VR::DS, "0.7\\0.7"));
        obj.put(s(tags::SLICE_THICKNESS, VR::DS, "1.25"));
        obj.put(s(tags::RESCALE_INTERCEPT, VR::DS, "-1024"));
        obj.put(s(tags::RESCALE_SLOPE, VR::DS, "1"));
        obj.put(s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"));
        obj.put(DataElement::new(
            tags::ROWS,
            VR::US,
            PrimitiveValue::from(ny as u16),
        ));
        obj.put(DataElement::new(
            tags::COLUMNS,
            VR::US,
            PrimitiveValue::from(nx as u16),
        ));
        obj.put(DataElement::new(
            tags::SAMPLES_PER_PIXEL,
            VR::US,
            PrimitiveValue::from(1u16),
        ));
        obj.put(DataElement::new(
            tags::BITS_ALLOCATED,
            VR::US,
            PrimitiveValue::from(16u16),
        ));
        obj.put(DataElement::new(
            tags::BITS_STORED,
            VR::US,
            PrimitiveValue::from(16u16),
        ));
        obj.put(DataElement::new(
            tags::HIGH_BIT,
            VR::US,
            PrimitiveValue::from(15u16),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(1u16),
        ));
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::from(px),
        ));
        let file = obj
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax("1.2.840.10008.1.2.1")
                    .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
                    .media_storage_sop_instance_uid(&uid),
            )
            .unwrap();
        file.write_to_file(dir.join(format!("{:08x}.dcm", (k * 2654435761) % 0xffff_ffff)))
            .unwrap();
    }
}

fn benches(c: &mut Criterion) {
    let v = phantom(512, 512, 300);
    let mut g = c.benchmark_group("med-io");
    g.sample_size(10);
    let pipeline = CtPreprocess::default();
    let out = pipeline.apply(&v).unwrap();
    eprintln!(
        "preprocess output dims {:?}, spacing {:?}",
        out.dims(),
        out.spacing()
    );
    g.bench_function("preprocess_512x512x300", |b| {
        b.iter(|| pipeline.apply(&v).unwrap())
    });
    let dir = tempfile::tempdir().unwrap();
    write_series(dir.path(), &v);
    let opts = med_io::SeriesOptions {
        progress: false,
        ..Default::default()
    };
    let read = med_io::read_dicom_series_with(dir.path(), &opts).unwrap();
    assert_eq!(read.dims(), [512, 512, 300]);
    g.bench_function("read_series_300", |b| {
        b.iter(|| med_io::read_dicom_series_with(dir.path(), &opts).unwrap())
    });
    g.finish();
}

criterion_group!(medio, benches);
criterion_main!(medio);
