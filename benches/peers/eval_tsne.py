#!/usr/bin/env python3
"""Peer of crates/med-eval/benches/tsne.rs: scikit-learn TSNE (Barnes-Hut, perplexity 30, 1000
iterations, PCA init) on 2000 points of dimension 512 in ten Gaussian clusters.

Run: /work/pyenv/bin/python benches/peers/eval_tsne.py
"""
import time

import numpy as np
import sklearn
from sklearn.manifold import TSNE, trustworthiness

rng = np.random.default_rng(0)
centres = 3.0 * rng.normal(0, 1, (10, 512))
x = (centres[np.arange(2000) % 10] + rng.normal(0, 1, (2000, 512))).astype(np.float32)
times = []
for rep in range(3):
    t0 = time.perf_counter()
    e = TSNE(n_components=2, perplexity=30, max_iter=1000, init="pca", random_state=rep).fit_transform(x)
    times.append(time.perf_counter() - t0)
print(f"sklearn {sklearn.__version__} TSNE n=2000 d=512: best {min(times):.2f} s of {len(times)}")
print(f"trustworthiness k=10: {trustworthiness(x, e, n_neighbors=10):.4f}")
