#!/usr/bin/env python3
"""Peer of crates/med-eval/benches/auc.rs: scikit-learn roc_auc_score and a numpy fast DeLong
(Sun & Xu 2014, midranks via scipy.stats.rankdata) for n = 1e5, and a 200-replicate stratified
bootstrap for n = 1e4.

Run: /work/pyenv/bin/python benches/peers/eval_auc.py
"""
import timeit

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score


def data(n):
    rng = np.random.default_rng(0)
    y = rng.random(n) < 0.3
    s = np.round((rng.normal(0, 1, n) + y) * 1e4) / 1e4
    return y, s


def delong_ci(y, s):
    pos, neg = s[y], s[~y]
    m, n = len(pos), len(neg)
    tx = stats.rankdata(pos)
    ty = stats.rankdata(neg)
    tz = stats.rankdata(np.r_[pos, neg])
    auc = tz[:m].sum() / m / n - (m + 1.0) / 2.0 / n
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    var = np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n
    z = stats.norm.ppf(0.975)
    return auc, max(0, auc - z * np.sqrt(var)), min(1, auc + z * np.sqrt(var))


def bootstrap(y, s, reps=200, seed=1):
    rng = np.random.default_rng(seed)
    pos, neg = s[y], s[~y]
    out = np.empty(reps)
    for r in range(reps):
        bp = pos[rng.integers(0, len(pos), len(pos))]
        bn = neg[rng.integers(0, len(neg), len(neg))]
        yy = np.r_[np.ones(len(bp), bool), np.zeros(len(bn), bool)]
        out[r] = roc_auc_score(yy, np.r_[bp, bn])
    return np.quantile(out, [0.025, 0.975])


def best(stmt, number):
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number


y, s = data(100_000)
print(f"roc_auc_score n=1e5: {best(lambda: roc_auc_score(y, s), 10) * 1e3:.2f} ms")
print(f"numpy fast DeLong auc+ci n=1e5: {best(lambda: delong_ci(y, s), 10) * 1e3:.2f} ms")
y, s = data(10_000)
print(f"bootstrap 200 reps n=1e4: {best(lambda: bootstrap(y, s), 1) * 1e3:.1f} ms")
