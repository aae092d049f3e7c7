"""Peer for crates/med-io/benches/medio.rs: the same steps in SimpleITK / MONAI / pydicom.

Run: /work/pyenv/bin/python benches/peers/medio_simpleitk.py [--repeats 3]
Prints the best-of-N wall time of:
  preprocess_sitk   : HU, 1 mm linear resampling (sitk.Resample), lung segmentation
                      (threshold, ConnectedComponent, drop border air, two largest, per-slice
                      hole filling), crop with 5 mm margin, IntensityWindowing(-100, 900) -> [0, 1],
                      128x128 axial area resize (torch adaptive pooling, = MONAI Resize "area").
  preprocess_monai  : the same with MONAI Spacing / CropForeground / ScaleIntensityRange / Resize
                      (lung segmentation as above: MONAI has none without a network).
  read_series_sitk  : sitk.ImageSeriesReader (GDCM) on 300 512x512 int16 slices.
  read_series_pydicom: pydicom dcmread + sort by position on the normal + np.stack.
on the 512x512x300 phantom (0.7x0.7x1.25 mm) that the Rust bench builds with the same formula.
"""
import argparse, os, tempfile, time
import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F
import scipy.ndimage as ndi
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

SP = (0.7, 0.7, 1.25)


def phantom(nx=512, ny=512, nz=300):
    k = np.arange(nz)[:, None, None]
    j = np.arange(ny)[None, :, None]
    i = np.arange(nx)[None, None, :]
    z = (k - nz / 2) / (0.45 * nz)
    y = (j - ny / 2) / ny
    x = (i - nx / 2) / nx
    body = (x / 0.42) ** 2 + (y / 0.3) ** 2 < 1
    lung = lambda cx: ((x - cx) / 0.15) ** 2 + (y / 0.2) ** 2 + z * z < 1
    vessel = ((i * 7 + j * 3) % 23) == 0
    spine = (x ** 2 + (y - 0.22) ** 2) < 0.003
    hu = np.full((nz, ny, nx), 40.0, np.float32)
    hu[np.broadcast_to((lung(-0.2) | lung(0.2)) & ~vessel, hu.shape)] = -850
    hu[np.broadcast_to(spine, hu.shape) & np.broadcast_to(body, hu.shape)] = 700
    hu[~np.broadcast_to(body, hu.shape)] = -1000
    return (hu + 1024).astype(np.int16)  # stored values, intercept -1024; array (z, y, x)


def lung_mask(hu):  # hu: numpy (z, y, x)
    air = sitk.GetImageFromArray((hu < -320).astype(np.uint8))
    lab = sitk.GetArrayFromImage(sitk.ConnectedComponent(air, False))
    border = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(), lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    counts = np.bincount(lab.ravel())
    counts[0] = 0
    counts[border] = 0
    order = np.argsort(counts)[::-1]
    keep = [order[0]] + ([order[1]] if counts[order[1]] >= 0.1 * counts[order[0]] else [])
    m = np.isin(lab, keep)
    for s in range(m.shape[0]):
        m[s] = ndi.binary_fill_holes(m[s])
    return m


def bbox(m, margin):
    idx = np.nonzero(m)
    lo = [max(int(a.min()) - mg, 0) for a, mg in zip(idx, margin)]
    hi = [min(int(a.max()) + 1 + mg, n) for a, mg, n in zip(idx, margin, m.shape)]
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def area_resize(arr):  # (z, y, x) -> (z, 128, 128)
    t = torch.from_numpy(np.ascontiguousarray(arr))[:, None]
    return F.interpolate(t, size=(128, 128), mode="area")[:, 0].numpy()


def preprocess_sitk(raw):
    img = sitk.GetImageFromArray(raw)
    img.SetSpacing(SP)
    hu = sitk.Cast(img, sitk.sitkFloat32) - 1024.0
    size = [int(round((n - 1) * s / 1.0 + 1)) for n, s in zip(hu.GetSize(), SP)]
    res = sitk.Resample(hu, size, sitk.Transform(), sitk.sitkLinear, hu.GetOrigin(), (1.0, 1.0, 1.0), hu.GetDirection(), -1000.0, sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(res)
    sl = bbox(lung_mask(arr), (5, 5, 5))
    win = sitk.IntensityWindowing(sitk.GetImageFromArray(arr[sl]), -100.0, 900.0, 0.0, 1.0)
    return area_resize(sitk.GetArrayFromImage(win))


def preprocess_monai(raw):
    from monai.data import MetaTensor
    from monai.transforms import CropForeground, Resize, ScaleIntensityRange, Spacing
    # MONAI arrays are channel-first (C, x, y, z).
    t = torch.from_numpy(np.transpose(raw, (2, 1, 0)).astype(np.float32) - 1024.0)[None]
    mt = MetaTensor(t, affine=torch.diag(torch.tensor([SP[0], SP[1], SP[2], 1.0], dtype=torch.float64)))
    hu = Spacing(pixdim=(1.0, 1.0, 1.0), mode="bilinear", padding_mode="border")(mt)
    m = lung_mask(np.transpose(np.asarray(hu[0]), (2, 1, 0)))
    src = torch.from_numpy(np.transpose(m, (2, 1, 0)).astype(np.float32))[None]
    # Foreground from the mask channel only (channel 1), applied to both channels.
    crop = CropForeground(select_fn=lambda v: v > 0, channel_indices=[1], margin=5, allow_smaller=True)
    x = crop(torch.cat([hu, src]))[:1]
    x = ScaleIntensityRange(-100, 900, 0.0, 1.0, clip=True)(x)
    return Resize(spatial_size=(128, 128, -1), mode="area")(x)


def write_series(raw, d):
    nz, ny, nx = raw.shape
    for k in range(nz):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.77.{k}"
        ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID = "CT", "1.2.826.0.1.3680043.8.498.77"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.76"
        ds.InstanceNumber = nz - k
        ds.ImagePositionPatient = ["-179.2", "-179.2", f"{k * 1.25:.2f}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing, ds.SliceThickness = ["0.7", "0.7"], "1.25"
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        ds.PhotometricInterpretation, ds.SamplesPerPixel = "MONOCHROME2", 1
        ds.Rows, ds.Columns = ny, nx
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = raw[k].tobytes()
        ds.save_as(os.path.join(d, f"{(k * 2654435761) % 0xFFFFFFFF:08x}.dcm"), enforce_file_format=True)


def read_sitk(d):
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(d))
    return sitk.GetArrayFromImage(r.Execute())


def read_pydicom(d):
    dss = [pydicom.dcmread(os.path.join(d, f)) for f in os.listdir(d)]
    row, col = np.array(dss[0].ImageOrientationPatient[:3], float), np.array(dss[0].ImageOrientationPatient[3:], float)
    n = np.cross(row, col)
    dss.sort(key=lambda s: float(np.dot(n, np.array(s.ImagePositionPatient, float))))
    return np.stack([s.pixel_array for s in dss])


def best(f, arg, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = f(arg)
        times.append(time.perf_counter() - t)
    return min(times), out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    print(f"SimpleITK {sitk.Version_VersionString()}, torch {torch.__version__}, pydicom {pydicom.__version__}, threads torch={torch.get_num_threads()}")
    raw = phantom()
    t, out = best(preprocess_sitk, raw, a.repeats)
    print(f"preprocess_sitk     {t:8.3f} s  out {out.shape}")
    t, out = best(preprocess_monai, raw, a.repeats)
    print(f"preprocess_monai    {t:8.3f} s  out {tuple(out.shape)}")
    with tempfile.TemporaryDirectory() as d:
        write_series(raw, d)
        t, out = best(read_sitk, d, a.repeats)
        print(f"read_series_sitk    {t:8.3f} s  out {out.shape}")
        t, out = best(read_pydicom, d, a.repeats)
        print(f"read_series_pydicom {t:8.3f} s  out {out.shape}")
