"""Reference values for med-io's NIfTI parity tests, from nibabel's own test files.

Run: /work/pyenv/bin/python tools/medio/nifti_fixtures.py
Copies the (small) nibabel test files into crates/med-io/tests/data/ and writes nifti_ref.json with
what nibabel reports: shape, best affine converted to LPS geometry, and voxel statistics.
"""
import json, os, shutil, hashlib
import numpy as np
import nibabel

SRC = os.path.join(os.path.dirname(nibabel.__file__), "tests", "data")
DST = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "med-io", "tests", "data")
FILES = ["anatomical.nii", "standard.nii.gz", "example_nifti2.nii.gz"]

out = {"nibabel_version": nibabel.__version__, "numpy_version": np.__version__, "files": {}}
for name in FILES:
    shutil.copy(os.path.join(SRC, name), os.path.join(DST, name))
    img = nibabel.load(os.path.join(SRC, name))
    data = np.asarray(img.dataobj, dtype=np.float64)
    if data.ndim > 3:
        data = data[..., 0] if data.shape[3] > 1 else data.reshape(data.shape[:3])
    aff = img.affine
    lps = np.diag([-1.0, -1.0, 1.0]) @ aff[:3, :]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    # Volume layout: i fastest -> Fortran order of data[i, j, k].
    flat = data.reshape(-1, order="F")
    out["files"][name] = {
        "sha256": hashlib.sha256(open(os.path.join(SRC, name), "rb").read()).hexdigest(),
        "shape": list(data.shape[:3]) + [1] * (3 - data.ndim),
        "spacing": spacing.tolist(),
        "origin": lps[:, 3].tolist(),
        "direction": (lps[:, :3] / spacing).tolist(),
        "axcodes": "".join(nibabel.aff2axcodes(aff)),
        "min": float(flat.min()), "max": float(flat.max()), "sum": float(flat.sum()),
        "first": flat[:8].tolist(), "last": flat[-4:].tolist(),
        "probe": [[int(i), float(flat[i])] for i in np.linspace(0, flat.size - 1, 7).astype(int)],
    }
json.dump(out, open(os.path.join(DST, "nifti_ref.json"), "w"), indent=1)
print(json.dumps({k: (v["shape"], v["axcodes"], v["sum"]) for k, v in out["files"].items()}))
