"""Render DRRs of a small HU volume with DiffDRR itself, for med-io's parity test.

Writes crates/med-io/tests/fixtures/drr_diffdrr.json.
Made with: diffdrr 0.6.1, torch 2.15.0 (CPU), torchio 1.2.1, nibabel 5.4.2, torchvision 0.29.2, numpy.
Run: /work/pyenv/bin/python tools/drr/make_fixture.py
"""
import json
import math
import os
import tempfile

import nibabel as nib
import numpy as np
import torch
import torchvision
import diffdrr
from diffdrr.data import read
from diffdrr.drr import DRR

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "med-io", "tests", "fixtures", "drr_diffdrr.json")

rng = np.random.default_rng(7)
nx, ny, nz = 12, 10, 8
# HU values that exercise all three branches of the density rule: air, soft tissue, bone.
hu = rng.choice([-1000.0, -900.0, -500.0, 0.0, 40.0, 200.0, 600.0, 1200.0], size=(nx, ny, nz))
hu += rng.normal(0, 20, size=hu.shape)
hu = hu.astype(np.float32)

spacing = np.array([3.0, 2.5, 4.0])
origin_lps = np.array([10.0, -20.0, 30.0])
# Axes permuted and flipped (still orthonormal) so that the direction matrix is exercised:
# i -> -P (anterior), j -> L, k -> S.
direction_lps = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
aff_lps = np.eye(4)
aff_lps[:3, :3] = direction_lps @ np.diag(spacing)
aff_lps[:3, 3] = origin_lps
flip = np.diag([-1.0, -1.0, 1.0, 1.0])
aff_ras = flip @ aff_lps

cases = [
    dict(name="ap_readme", orientation="AP", bam=1.0, sdd=1020.0, height=24, width=24, delx=4.0, dely=4.0,
         rot=[0, 0, 0], trans=[0, 850, 0], renderer="siddon"),
    dict(name="pa", orientation="PA", bam=1.0, sdd=1020.0, height=20, width=24, delx=4.0, dely=3.0,
         rot=[0, 0, 0], trans=[0, -850, 0], renderer="siddon"),
    dict(name="rotated_bam3", orientation="AP", bam=3.0, sdd=800.0, height=18, width=22, delx=5.0, dely=5.0,
         rot=[math.pi / 6, 0.1, -0.2], trans=[1, 50, -2], renderer="siddon"),
    dict(name="lateral", orientation="AP", bam=2.5, sdd=1020.0, height=16, width=16, delx=6.0, dely=6.0,
         rot=[math.pi / 2, 0, 0], trans=[0, 850, 0], renderer="siddon"),
    dict(name="trilinear", orientation="AP", bam=1.0, sdd=1020.0, height=24, width=24, delx=4.0, dely=4.0,
         rot=[0, 0, 0], trans=[0, 850, 0], renderer="trilinear", n_points=64),
]

with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "vol.nii.gz")
    nib.save(nib.Nifti1Image(hu, aff_ras), path)
    for c in cases:
        subject = read(path, orientation=c["orientation"], bone_attenuation_multiplier=c["bam"])
        kw = {}
        if c["renderer"] == "trilinear":
            kw["n_points"] = c["n_points"]
        drr = DRR(subject, sdd=c["sdd"], height=c["height"], width=c["width"], delx=c["delx"], dely=c["dely"],
                  renderer=c["renderer"])
        rot = torch.tensor([c["rot"]], dtype=torch.float32)
        trans = torch.tensor([c["trans"]], dtype=torch.float32)
        with torch.no_grad():
            img = drr(rot, trans, parameterization="euler_angles", convention="ZXY", **kw)
        c["image"] = [float(v) for v in img[0, 0].numpy().ravel()]
        c["density_mean"] = float(subject.density.data.mean())

# Antialiased resize as torchvision.transforms.Resize does it on DRRs (X-ray2CTPA resizes 512 -> 224).
small = rng.uniform(0, 10, size=(20, 16)).astype(np.float32)
resized = torchvision.transforms.Resize((7, 9), antialias=True)(torch.from_numpy(small)[None, None])[0, 0]

fixture = dict(
    generator="tools/drr/make_fixture.py",
    versions=dict(diffdrr=diffdrr.__version__, torch=torch.__version__, torchvision=torchvision.__version__,
                  nibabel=nib.__version__, numpy=np.__version__),
    dims=[nx, ny, nz],
    spacing=spacing.tolist(),
    origin=origin_lps.tolist(),
    direction=direction_lps.tolist(),
    # i fastest, like med_io::Volume.
    hu=[float(v) for v in hu.transpose(2, 1, 0).ravel()],
    cases=cases,
    resize=dict(input=[float(v) for v in small.ravel()], in_h=20, in_w=16, out_h=7, out_w=9,
                output=[float(v) for v in resized.numpy().ravel()]),
)
with open(OUT, "w") as f:
    json.dump(fixture, f)
print("wrote", OUT, os.path.getsize(OUT), "bytes")
