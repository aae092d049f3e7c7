#!/usr/bin/env python3
"""Parity fixtures for crates/med-eval (tests/parity.rs).

Run:  /work/pyenv/bin/python tools/eval/make_fixtures.py
Writes crates/med-eval/tests/fixtures/sklearn_parity.json.

Reference values come from scikit-learn (roc_auc_score, roc_curve, StratifiedKFold with
shuffle=False, calibration_curve, brier_score_loss, manifold.trustworthiness) and from a numpy port of
the fast DeLong algorithm (Sun & Xu 2014, as in yandexdataschool/roc_comparison and pROC), which this
script checks against an O(mn) brute-force DeLong covariance and against scipy's Mann-Whitney U.
R's pROC is not installed here, so no pROC values are included.
"""
import json
import os
import sys

import numpy as np
import scipy
import sklearn
from scipy import stats
from sklearn.calibration import calibration_curve
from sklearn.manifold import trustworthiness
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "med-eval", "tests",
                   "fixtures", "sklearn_parity.json")
Z975 = stats.norm.ppf(0.975)


def midrank(x):
    """1-based midranks, as compute_midrank in the reference implementation."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = len(x)
    t = np.zeros(n)
    i = 0
    while i < n:
        j = i
        while j < n and xs[j] == xs[i]:
            j += 1
        t[i:j] = 0.5 * (i + j - 1) + 1
        i = j
    out = np.empty(n)
    out[order] = t
    assert np.allclose(out, stats.rankdata(x, method="average"))
    return out


def fast_delong(preds_sorted, m):
    """preds_sorted: k x (m+n), positives first. Returns aucs, covariance."""
    k, total = preds_sorted.shape
    n = total - m
    tx = np.array([midrank(r[:m]) for r in preds_sorted])
    ty = np.array([midrank(r[m:]) for r in preds_sorted])
    tz = np.array([midrank(r) for r in preds_sorted])
    aucs = tz[:, :m].sum(axis=1) / m / n - (m + 1.0) / 2.0 / n
    v01 = (tz[:, :m] - tx) / n
    v10 = 1.0 - (tz[:, m:] - ty) / m
    sx = np.atleast_2d(np.cov(v01))
    sy = np.atleast_2d(np.cov(v10))
    return aucs, sx / m + sy / n


def brute_delong(pos_list, neg_list):
    def psi(x, y):
        return 1.0 if x > y else (0.5 if x == y else 0.0)
    k = len(pos_list)
    v10 = [[np.mean([psi(x, y) for y in neg_list[a]]) for x in pos_list[a]] for a in range(k)]
    v01 = [[np.mean([psi(x, y) for x in pos_list[a]]) for y in neg_list[a]] for a in range(k)]
    m, n = len(pos_list[0]), len(neg_list[0])
    return np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n


def finite(x):
    return [None if not np.isfinite(v) else float(v) for v in x]


def roc_case(name, y, a, b):
    y = np.asarray(y, dtype=int)
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    order = np.r_[np.where(y == 1)[0], np.where(y == 0)[0]]
    m = int(y.sum())
    aucs, cov = fast_delong(np.vstack([a[order], b[order]]), m)
    brute = brute_delong([a[y == 1], b[y == 1]], [a[y == 0], b[y == 0]])
    assert np.max(np.abs(brute - cov)) < 1e-15, name
    for auc, s in zip(aucs, (a, b)):
        assert abs(auc - roc_auc_score(y, s)) < 1e-12, name
        u = stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic
        assert abs(u / (m * (len(y) - m)) - auc) < 1e-12, name
    var_diff = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = aucs[0] - aucs[1]
    if var_diff <= 0:
        z = 0.0 if diff == 0 else float(np.sign(diff) * np.inf)
    else:
        z = diff / np.sqrt(var_diff)
    p = float(2 * stats.norm.sf(abs(z)))
    per = {}
    for key, s, auc, var in (("a", a, aucs[0], cov[0, 0]), ("b", b, aucs[1], cov[1, 1])):
        se = np.sqrt(var)
        plain = [max(0.0, auc - Z975 * se), min(1.0, auc + Z975 * se)]
        if 0 < auc < 1:
            lg = np.log(auc / (1 - auc))
            h = Z975 * se / (auc * (1 - auc))
            logit = [float(1 / (1 + np.exp(-(lg - h)))), float(1 / (1 + np.exp(-(lg + h))))]
        else:
            logit = None
        fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
        j = tpr - fpr
        best = int(np.argmax(j))
        t = thr[best]
        pred = s >= t
        per[key] = {
            "auc": float(auc),
            "sklearn_auc": float(roc_auc_score(y, s)),
            "variance": float(var),
            "ci_plain": [float(v) for v in plain],
            "ci_logit": logit,
            "youden_threshold": None if not np.isfinite(t) else float(t),
            "youden_j": float(j[best]),
            "youden_tp": int(np.sum(pred & (y == 1))),
            "youden_fp": int(np.sum(pred & (y == 0))),
        }
    # Stratified percentile bootstrap of a (pROC's default), numpy RNG: compare only statistically.
    brng = np.random.default_rng(12345)
    pos, neg = a[y == 1], a[y == 0]
    reps = np.empty(2000)
    yy = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    for r in range(2000):
        reps[r] = roc_auc_score(yy, np.r_[brng.choice(pos, len(pos)), brng.choice(neg, len(neg))])
    per["a"]["bootstrap_ci"] = np.quantile(reps, [0.025, 0.975]).tolist()
    per["a"]["bootstrap_se"] = float(np.std(reps, ddof=1))
    curves = {}
    for drop in (False, True):
        fpr, tpr, thr = roc_curve(y, a, drop_intermediate=drop)
        assert np.isinf(thr[0])
        curves["drop" if drop else "full"] = {
            "fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": finite(thr)}
    return {
        "name": name,
        "labels": y.tolist(),
        "scores_a": a.tolist(),
        "scores_b": b.tolist(),
        "a": per["a"],
        "b": per["b"],
        "covariance_ab": float(cov[0, 1]),
        "z": float(z) if np.isfinite(z) else None,
        "p_value": p,
        "roc_a": curves,
    }


def main():
    rng = np.random.default_rng(20251129)
    cases = []
    # Ties: scores on a coarse grid, 7 positives and 9 negatives.
    y = np.r_[np.ones(7), np.zeros(9)].astype(int)
    a = np.r_[[5, 4, 4, 3, 5, 2, 4], [1, 2, 3, 1, 2, 1, 3, 1, 2]].astype(float)
    b = np.r_[[3, 2, 4, 3, 1, 2, 4], [1, 3, 3, 1, 2, 2, 4, 1, 2]].astype(float)
    cases.append(roc_case("ties", y, a, b))
    # Heavy imbalance: 6 positives among 40.
    y = np.r_[np.ones(6), np.zeros(34)].astype(int)
    a = np.round(np.r_[rng.normal(1.2, 1, 6), rng.normal(0, 1, 34)], 3)
    b = np.round(a + rng.normal(0, 0.7, 40), 3)
    cases.append(roc_case("imbalanced", y, a, b))
    # Near-perfect separation: one overlap.
    y = np.r_[np.ones(10), np.zeros(10)].astype(int)
    a = np.r_[[0.85], np.linspace(1.0, 1.9, 9), np.linspace(0.0, 0.9, 10)]
    b = a + np.round(rng.normal(0, 0.4, 20), 3)
    cases.append(roc_case("near_perfect", y, a, b))
    # Perfect separation for a (variance 0).
    y = np.r_[np.ones(5), np.zeros(6)].astype(int)
    a = np.r_[[0.9, 0.8, 0.95, 0.7, 0.99], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]
    b = np.r_[[0.6, 0.2, 0.9, 0.45, 0.5], [0.1, 0.5, 0.3, 0.4, 0.25, 0.7]]
    cases.append(roc_case("edge_perfect_a", y, a, b))
    # n < 10, shuffled order, ties across classes.
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0])
    a = np.array([0.3, 0.7, 0.7, 0.2, 0.9, 0.1, 0.3, 0.3, 0.5])
    b = np.array([0.5, 0.5, 0.5, 0.6, 0.8, 0.2, 0.1, 0.4, 0.5])
    cases.append(roc_case("tiny", y, a, b))
    # Larger, interleaved, many ties (scores rounded to one decimal).
    y = (rng.random(150) < 0.3).astype(int)
    a = np.round(rng.normal(0, 1, 150) + 0.9 * y, 1)
    b = np.round(0.5 * a + rng.normal(0, 1, 150), 1)
    cases.append(roc_case("rounded_150", y, a, b))

    folds = []
    label_sets = {
        "binary_30_8": [0] * 22 + [1] * 8,
        "binary_interleaved": (rng.random(47) < 0.35).astype(int).tolist(),
        "three_class": rng.integers(0, 3, 40).tolist(),
        "first_appearance_order": [2, 2, 0, 1, 0, 2, 1, 1, 0, 2, 2, 0, 1, 2, 0, 1, 2, 2],
    }
    # Make the 30/8 set interleaved deterministically so that index order matters.
    label_sets["binary_30_8"] = rng.permutation(label_sets["binary_30_8"]).tolist()
    for name, labels in label_sets.items():
        k = 6 if name == "binary_30_8" else (4 if name != "first_appearance_order" else 3)
        skf = StratifiedKFold(n_splits=k, shuffle=False)
        tests = [t.tolist() for _, t in skf.split(np.zeros(len(labels)), labels)]
        folds.append({"name": name, "labels": labels, "n_splits": k, "test_folds": tests})

    # Calibration.
    yc = (rng.random(60) < 0.4).astype(int)
    pc = np.clip(np.round(0.4 * yc + rng.random(60) * 0.6, 2), 0, 1)
    pc[:3] = [0.2, 0.5, 1.0]  # values on bin edges
    prob_true, prob_pred = calibration_curve(yc, pc, n_bins=5, strategy="uniform")
    calib = {"labels": yc.tolist(), "probs": pc.tolist(), "n_bins": 5,
             "prob_true": prob_true.tolist(), "prob_pred": prob_pred.tolist(),
             "brier": float(brier_score_loss(yc, pc))}

    # Trustworthiness of a noisy embedding.
    X = np.round(rng.normal(0, 1, (30, 4)), 3).astype(np.float32)
    E = X[:, :2].astype(np.float64) + np.round(rng.normal(0, 0.5, (30, 2)), 3)
    trust = {"data": X.ravel().astype(float).tolist(), "dim": 4, "embedding": E.tolist(),
             "k": 5, "trustworthiness": float(trustworthiness(X.astype(np.float64), E, n_neighbors=5))}

    out = {
        "generator": "tools/eval/make_fixtures.py",
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                     "scipy": scipy.__version__, "scikit-learn": sklearn.__version__},
        "roc_cases": cases,
        "stratified_kfold": folds,
        "calibration": calib,
        "trustworthiness": trust,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, allow_nan=False)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")
    for c in cases:
        print(c["name"], c["a"]["auc"], c["a"]["variance"], c["b"]["auc"], c["covariance_ab"], c["z"], c["p_value"])


if __name__ == "__main__":
    main()
