"""Peer for crates/med-io/benches/drr.rs: DiffDRR 0.6.1 on the CPU, same volume and camera.

224x224 DRR (DiffDRR README camera: sdd 1020, translation (0, 850, 0), AP, 400 mm field) of a 256^3
volume of 1.5 mm voxels, Siddon (default) and trilinear (n_points=500). Density conversion happens once
in DRR(...) and is not timed, as in the Rust bench.
Run: /work/pyenv/bin/python benches/peers/drr_diffdrr.py   (diffdrr 0.6.1, torch 2.15 CPU)
"""
import time

import numpy as np
import torch
from torchio import ScalarImage

import diffdrr
from diffdrr.data import read
from diffdrr.drr import DRR

n, s = 256, 1.5
c = (n - 1) / 2
i = (np.arange(n) - c) * s
x, y, z = np.meshgrid(i, i, i, indexing="ij")  # volume index (i, j, k)
v = np.full((n, n, n), -1000.0, dtype=np.float32)
body = ((x / 170) ** 2 + (y / 120) ** 2 < 1) & (np.abs(z) < 180)
v[body] = 40.0
v[body & (((np.abs(x) - 70) / 50) ** 2 + (y / 80) ** 2 + (z / 130) ** 2 < 1)] = -850.0
v[body & (x**2 + (y - 80) ** 2 < 18**2)] = 700.0
# LPS spacing 1.5 mm, identity direction -> RAS affine diag(-1.5, -1.5, 1.5).
affine = np.diag([-s, -s, s, 1.0])
subject = read(ScalarImage(tensor=torch.from_numpy(v)[None], affine=affine))

rot = torch.zeros(1, 3)
trans = torch.tensor([[0.0, 850.0, 0.0]])
print(f"diffdrr {diffdrr.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}")
for renderer, kw in [("siddon", {}), ("trilinear", {"n_points": 500})]:
    drr = DRR(subject, sdd=1020.0, height=224, delx=400.0 / 224, renderer=renderer)
    times = []
    with torch.no_grad():
        drr(rot, trans, parameterization="euler_angles", convention="ZXY", **kw)  # warm-up
        for _ in range(3):
            t0 = time.perf_counter()
            drr(rot, trans, parameterization="euler_angles", convention="ZXY", **kw)
            times.append(time.perf_counter() - t0)
    print(f"{renderer}: median {np.median(times) * 1e3:.0f} ms over {len(times)} runs")
