"""Reference values and gradients for kd-losses, computed with PyTorch in float64.

Writes crates/kd-losses/tests/fixtures/torch_reference.json (a few KB). Run from the repo root:

    /work/pyenv/bin/python tools/kd/make_fixtures.py

Each loss is written the way its reference code computes it (F.mse_loss, F.cosine_similarity,
F.smooth_l1_loss, F.binary_cross_entropy_with_logits, RepDistiller's DistillKL on the two-class
logits [0, z], ProtoKD's prototype_loss / softmax_kl_loss adapted to one embedding per sample, the
margin contrastive loss on torch.cdist), and the gradient with respect to the student's input is
taken by torch autograd.
"""

import json
import pathlib

import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(0)
B, D = 6, 5
gen = torch.Generator().manual_seed(1234)


def randn(*shape, scale=1.0):
    return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale)


e_s = randn(B, D)
e_t = randn(B, D)
e_t_wide = randn(B, 7)
z_s = randn(B, scale=2.0)
z_t = randn(B, scale=2.0)
soft = torch.sigmoid(randn(B, scale=2.0))
labels = torch.tensor([0, 1, 1, 0, 1, 0], dtype=torch.float64)
logits3_s = randn(B, 3, scale=2.0)
logits3_t = randn(B, 3, scale=2.0)
classes3 = torch.tensor([0, 2, 1, 2, 0, 1])


def two_class(z):
    return torch.stack([torch.zeros_like(z), z], dim=1)


def distill_kl(ys, yt, T):
    # RepDistiller DistillKL: KL(log_softmax(ys/T), softmax(yt/T), sum) * T^2 / batch
    p_s = F.log_softmax(ys / T, dim=1)
    p_t = F.softmax(yt / T, dim=1)
    return F.kl_div(p_s, p_t, reduction="sum") * T**2 / ys.shape[0]


def hinton_binary(zs, T=4.0, alpha=0.9):
    kd = distill_kl(two_class(zs), two_class(z_t), T)
    hard = F.binary_cross_entropy_with_logits(zs, labels)
    return alpha * kd + (1 - alpha) * hard


def hinton_softmax(ls, T=4.0, alpha=0.9):
    kd = distill_kl(ls, logits3_t, T)
    hard = F.cross_entropy(ls, classes3)
    return alpha * kd + (1 - alpha) * hard


def proto_term(fs, ft, eps=1e-5):
    s, t = [], []
    for k in (0, 1):
        m = labels == k
        ps = fs[m].mean(0, keepdim=True)
        pt = ft[m].mean(0, keepdim=True)
        s.append(F.cosine_similarity(fs, ps.expand_as(fs), dim=1, eps=eps))
        t.append(F.cosine_similarity(ft, pt.expand_as(ft), dim=1, eps=eps))
    return torch.mean((torch.stack(s, 1) - torch.stack(t, 1)) ** 2)


def protokd(fs, zs, T=10.0):
    proto = proto_term(fs, e_t_wide)
    kd = F.kl_div(F.log_softmax(two_class(zs) / T, 1), F.softmax(two_class(z_t) / T, 1), reduction="none").mean()
    hard = F.binary_cross_entropy_with_logits(zs, labels)
    return hard + 10.0 * kd + 0.1 * proto


def contrastive(fs, margin=1.0):
    d = torch.cdist(F.normalize(fs, dim=1), F.normalize(e_t, dim=1))
    eye = torch.eye(B, dtype=torch.bool)
    pos = (d[eye] ** 2).mean()
    neg = (F.relu(margin - d[~eye]) ** 2).mean()
    return pos + neg


def cosine(fs):
    return (1 - F.cosine_similarity(fs, e_t, dim=1, eps=1e-8)).mean()


cases = {
    "mse": (e_s, lambda x: F.mse_loss(x, e_t)),
    "cosine": (e_s, cosine),
    "smooth_l1": (e_s, lambda x: F.smooth_l1_loss(x, e_t, beta=1.0)),
    "bce_soft": (z_s, lambda z: F.binary_cross_entropy_with_logits(z, soft)),
    "hinton_binary": (z_s, hinton_binary),
    "hinton_softmax": (logits3_s, hinton_softmax),
    "protokd_embedding": (e_s, lambda x: protokd(x, z_s)),
    "protokd_logit": (z_s, lambda z: protokd(e_s, z)),
    "contrastive": (e_s, contrastive),
}

out = {
    "generator": f"tools/kd/make_fixtures.py, torch {torch.__version__}, numpy {np.__version__}",
    "inputs": {
        "e_s": e_s.tolist(),
        "e_t": e_t.tolist(),
        "e_t_wide": e_t_wide.tolist(),
        "z_s": z_s.tolist(),
        "z_t": z_t.tolist(),
        "soft": soft.tolist(),
        "labels": labels.tolist(),
        "logits3_s": logits3_s.tolist(),
        "logits3_t": logits3_t.tolist(),
        "classes3": classes3.tolist(),
    },
    "cases": {},
}
for name, (x0, f) in cases.items():
    x = x0.clone().requires_grad_(True)
    v = f(x)
    (g,) = torch.autograd.grad(v, x)
    out["cases"][name] = {"value": v.item(), "grad": g.flatten().tolist()}

path = pathlib.Path("crates/kd-losses/tests/fixtures/torch_reference.json")
path.write_text(json.dumps(out, indent=1))
print(f"wrote {path} ({path.stat().st_size} bytes)")
