#!/usr/bin/env python3
"""Parity fixtures for crates/med-eval's `agreement` module (tests/agreement_parity.rs).

Run:  /work/pyenv/bin/python tools/eval/make_agreement_fixtures.py
Writes crates/med-eval/tests/fixtures/agreement_parity.json with scipy's pearsonr / spearmanr
statistics and scikit-learn's r2_score(multioutput="variance_weighted") on seeded inputs, some with
ties.
"""
import json
import os
import sys

import numpy as np
import scipy
import sklearn
from scipy import stats
from sklearn.metrics import r2_score

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "med-eval", "tests",
                   "fixtures", "agreement_parity.json")

rng = np.random.default_rng(20261129)
corr = []
for name, n, tied in [("continuous", 40, False), ("ties", 30, True), ("small", 3, False)]:
    a = rng.normal(size=n)
    b = 0.6 * a + rng.normal(size=n)
    if tied:
        a = np.round(a * 2) / 2
        b = np.round(b * 2) / 2
    corr.append({
        "name": name,
        "a": a.tolist(),
        "b": b.tolist(),
        "pearson": float(stats.pearsonr(a, b).statistic),
        "spearman": float(stats.spearmanr(a, b).statistic),
    })
r2 = []
for name, n, d, noise in [("close", 25, 6, 0.3), ("poor", 20, 4, 2.0), ("scaled", 15, 3, 0.5)]:
    scale = rng.uniform(0.2, 5.0, size=d)
    t = rng.normal(size=(n, d)) * scale
    p = t + noise * rng.normal(size=(n, d))
    r2.append({
        "name": name,
        "truth": t.tolist(),
        "pred": p.tolist(),
        "r2": float(r2_score(t, p, multioutput="variance_weighted")),
    })
doc = {
    "generator": "tools/eval/make_agreement_fixtures.py",
    "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                 "scipy": scipy.__version__, "scikit-learn": sklearn.__version__},
    "correlation": corr,
    "r2": r2,
}
with open(OUT, "w") as f:
    json.dump(doc, f)
print("wrote", OUT)
