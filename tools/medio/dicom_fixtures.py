"""DICOM fixtures and reference values for med-io's parity tests.

Run: /work/pyenv/bin/python tools/medio/dicom_fixtures.py
1. Copies small test files shipped with pydicom into crates/med-io/tests/data/dicom/ and records what
   pydicom (with pylibjpeg for JPEG 2000) decodes: shape, geometry attributes, stored-value stats.
2. Writes synthetic series with the traps a series reader must survive (lexical file order != slice
   order, decreasing InstanceNumber, SliceThickness 3.0 != position spacing 2.5, slope 2 /
   intercept -1024, a tilted orientation, a distractor series in the same folder), a folder mixing two
   orientations, and chest X-rays in MONOCHROME1 with a window and with a VOI LUT table; the reference
   display values come from pydicom's apply_voi_lut.
Everything goes to dicom_ref.json.
"""
import hashlib, json, math, os, shutil
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_voi_lut, apply_modality_lut
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "med-io", "tests", "data")
DCM = os.path.join(ROOT, "dicom")
for sub in ["", "series_traps", "series_two_orientations"]:
    d = os.path.join(DCM, sub)
    if sub and os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d, exist_ok=True)

out = {"pydicom_version": pydicom.__version__, "numpy_version": np.__version__, "files": {}}
SHIPPED = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm",
           "MR_small_jp2klossless.dcm", "JPEG2000.dcm", "MR_truncated.dcm", "rtplan.dcm"]


def fl(v):
    return None if v is None else [float(x) for x in (v if isinstance(v, (list, pydicom.multival.MultiValue)) else [v])]


for name in SHIPPED:
    src = get_testdata_file(name)
    shutil.copy(src, os.path.join(DCM, name))
    ds = pydicom.dcmread(src)
    rec = {"sha256": hashlib.sha256(open(src, "rb").read()).hexdigest(),
           "transfer_syntax": str(ds.file_meta.TransferSyntaxUID)}
    try:
        a = ds.pixel_array.astype(np.float64)
    except Exception as e:  # the bad-input files
        rec["error"] = type(e).__name__
        out["files"][name] = rec
        continue
    flat = a.reshape(-1)
    rec.update({
        "rows": int(ds.Rows), "columns": int(ds.Columns),
        "slope": float(ds.get("RescaleSlope", 1.0)), "intercept": float(ds.get("RescaleIntercept", 0.0)),
        "pixel_spacing": fl(ds.get("PixelSpacing")), "position": fl(ds.get("ImagePositionPatient")),
        "orientation": fl(ds.get("ImageOrientationPatient")),
        "min": float(flat.min()), "max": float(flat.max()), "sum": float(flat.sum()),
        "first": flat[:8].tolist(),
        "probe": [[int(i), float(flat[i])] for i in np.linspace(0, flat.size - 1, 9).astype(int)],
    })
    out["files"][name] = rec


def base(uid_series, rows, cols, modality="CT"):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.SeriesInstanceUID = uid_series
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def save(ds, path):
    ds.save_as(path, enforce_file_format=True)


# --- series with traps ---
rows, cols, nslices, gap = 12, 16, 6, 2.5
a = math.radians(12.0)
row_dir = [1.0, 0.0, 0.0]
col_dir = [0.0, math.cos(a), -math.sin(a)]
normal = np.cross(row_dir, col_dir)
p0 = np.array([-20.0, -15.0, 40.0])
series_uid = "1.2.826.0.1.3680043.8.498.10"
names = ["f3.dcm", "a9.dcm", "z1.dcm", "b2.dcm", "m5.dcm", "c7.dcm"]  # slice k -> file name (not lexical)
stored = []
for k in range(nslices):
    ds = base(series_uid, rows, cols)
    pos = p0 + k * gap * normal
    ds.ImagePositionPatient = [f"{x:.6f}" for x in pos]
    ds.ImageOrientationPatient = [f"{x:.6f}" for x in row_dir + col_dir]
    ds.PixelSpacing = ["0.8", "0.6"]  # row spacing 0.8 (along j), column spacing 0.6 (along i)
    ds.SliceThickness = "3.0"
    ds.InstanceNumber = nslices - k
    ds.RescaleSlope, ds.RescaleIntercept = "2", "-1024"
    px = (np.arange(rows)[:, None] * 16 + np.arange(cols)[None, :] + 100 * k).astype(np.int16)
    ds.PixelData = px.tobytes()
    stored.append(px)
    save(ds, os.path.join(DCM, "series_traps", names[k]))
for k in range(2):  # distractor: another series, other size, same folder
    ds = base("1.2.826.0.1.3680043.8.498.99", 8, 8)
    ds.ImagePositionPatient = ["0", "0", str(k)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = ["1", "1"]
    ds.PixelData = np.full((8, 8), 7, np.int16).tobytes()
    save(ds, os.path.join(DCM, "series_traps", f"d{k}.dcm"))
vol = np.stack(stored)  # (k, j, i)
out["series_traps"] = {
    "dims": [cols, rows, nslices], "spacing": [0.6, 0.8, gap], "origin": p0.tolist(),
    "direction": [[row_dir[r], col_dir[r], float(normal[r])] for r in range(3)],
    "slope": 2.0, "intercept": -1024.0, "series_uid": series_uid,
    "sum": float(vol.sum()), "data_first_slice_first8": vol[0].reshape(-1)[:8].tolist(),
    "slice_files_in_order": names,
}

# --- two orientations ---
for k in range(3):
    ds = base("1.2.826.0.1.3680043.8.498.20", 4, 4)
    ds.ImagePositionPatient = ["0", "0", str(2.0 * k)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"] if k != 1 else ["0", "1", "0", "-1", "0", "0"]
    ds.PixelSpacing = ["1", "1"]
    ds.PixelData = np.zeros((4, 4), np.int16).tobytes()
    save(ds, os.path.join(DCM, "series_two_orientations", f"s{k}.dcm"))

# --- chest X-rays, MONOCHROME1 ---
rng = np.random.default_rng(7)
cx = (rng.integers(0, 4096, size=(24, 32))).astype(np.uint16)
cxr = {}
for variant in ["window", "voilut", "none"]:
    ds = base("1.2.826.0.1.3680043.8.498.30", 24, 32, modality="DX")
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.ImagerPixelSpacing = ["0.139", "0.139"]
    if variant == "window":
        ds.WindowCenter, ds.WindowWidth = "2000", "3000"
    if variant == "voilut":
        item = Dataset()
        lut = (np.sqrt(np.linspace(0, 1, 1024)) * 4095).astype(np.uint16)
        item.add_new(0x00283002, "US", [1024, 512, 12])  # LUTDescriptor: entries, first value, bits
        item.add_new(0x00283006, "US", lut.tolist())  # LUTData
        ds.VOILUTSequence = Sequence([item])
    ds.PixelData = cx.tobytes()
    fname = f"cxr_mono1_{variant}.dcm"
    save(ds, os.path.join(DCM, fname))
    ds = pydicom.dcmread(os.path.join(DCM, fname))
    arr = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if variant == "window":
        y = apply_voi_lut(arr, ds).astype(np.float64)
        y = y / 4095.0  # pydicom's windowing output range is [0, 2**BitsStored - 1]
    elif variant == "voilut":
        y = apply_voi_lut(ds.pixel_array, ds).astype(np.float64) / 4095.0  # no rescale in this file
    else:
        y = (arr - arr.min()) / (arr.max() - arr.min())
    y = 1.0 - y  # MONOCHROME1 -> MONOCHROME2
    cxr[fname] = {"rows": 24, "columns": 32, "spacing": [0.139, 0.139], "values": y.reshape(-1).tolist()}
out["cxr"] = cxr

json.dump(out, open(os.path.join(ROOT, "dicom_ref.json"), "w"))
print(sorted(out["files"]), os.path.getsize(os.path.join(ROOT, "dicom_ref.json")))
