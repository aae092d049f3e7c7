"""PyTorch float64 reference for the two kd-losses objectives with trainable parts: DisCoM-KD (both
adversarial modes) and the AFT-KD reconstruction. Random weights are drawn here, exported by the
Candle variable names, and loaded into the Rust modules by the test.

Writes crates/kd-losses/tests/fixtures/torch_modules.json. Run from the repo root:

    /work/pyenv/bin/python tools/kd/make_module_fixtures.py
"""

import json
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(7)
torch.set_default_dtype(torch.float64)
B, DS, DT, H, K, BLOCKS = 4, 3, 6, 5, 2, 3

e_s = torch.randn(B, DS)
e_t = torch.randn(B, DT)
y = torch.tensor([0.0, 1.0, 1.0, 0.0])


class GRL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


def perturb(m):
    # LayerNorm starts at weight 1, bias 0; perturb so the test exercises them.
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


class Branch(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.enc_inv = nn.Linear(d, H)
        self.proj = nn.Linear(H, K)
        self.proj_norm = perturb(nn.LayerNorm(K))
        self.enc_spec = nn.ModuleList([nn.Linear(d, H), nn.Linear(H, 2 * K)])
        self.task_cl = nn.Linear(2 * K, 1)

    def parts(self, x):
        inv = F.relu(self.proj_norm(self.proj(F.relu(self.enc_inv(x)))))
        s = F.relu(self.enc_spec[1](F.relu(self.enc_spec[0](x))))
        return inv, s[:, :K], s[:, K:]


student, teacher = Branch(DS), Branch(DT)
task_cl3, task_dom, task_dom2, discr = (nn.Linear(K, 1) for _ in range(4))
bce = F.binary_cross_entropy_with_logits


def discom(xs, mode):
    ia, fa, ra = student.parts(xs)
    ib, fb, rb = teacher.parts(e_t)
    one, zero, half = torch.ones(B), torch.zeros(B), torch.full((B,), 0.5)
    cl = (bce(student.task_cl(torch.cat([ia, fa], 1))[:, 0], y) + bce(teacher.task_cl(torch.cat([ib, fb], 1))[:, 0], y)) / 2
    aux = (bce(task_cl3(ia)[:, 0], y) + bce(task_cl3(ib)[:, 0], y)) / 2 + (
        bce(task_cl3(fa)[:, 0], y) + bce(task_cl3(fb)[:, 0], y)
    ) / 2
    mod = (
        bce(task_dom(fa)[:, 0], zero) + bce(task_dom(fb)[:, 0], one) + bce(task_dom2(ra)[:, 0], zero) + bce(task_dom2(rb)[:, 0], one)
    ) / 4
    if mode == "grl":
        adv = (bce(discr(GRL.apply(ia, 1.0))[:, 0], zero) + bce(discr(GRL.apply(ib, 1.0))[:, 0], one)) / 2
    else:
        adv = (bce(discr(ia)[:, 0], half) + bce(discr(ib)[:, 0], half)) / 2
    n = lambda v: F.normalize(v, dim=1)
    inf, irr, inv = torch.cat([fa, fb]), torch.cat([ra, rb]), torch.cat([ia, ib])
    orth = (n(inf) * n(irr)).sum(1).mean() + (n(inf) * n(inv)).sum(1).mean()
    return cl + aux + mod + adv + orth


def discriminator_loss():
    ia = student.parts(e_s)[0].detach()
    ib = teacher.parts(e_t)[0].detach()
    return (bce(discr(ia)[:, 0], torch.zeros(B)) + bce(discr(ib)[:, 0], torch.ones(B))) / 2


att_proj, feat_proj = nn.Linear(DS, DT), nn.Linear(DS, DT)


def aft(xs):
    def a(f):
        return F.normalize(f.view(B, BLOCKS, -1).pow(2).mean(-1), dim=1)

    def fb(f):
        return F.normalize(f.view(B, BLOCKS, -1), dim=-1)

    l_att = ((a(att_proj(xs)) - a(e_t)) ** 2).mean()
    l_feat = ((fb(feat_proj(xs)) - fb(e_t)) ** 2).sum(-1).mean()
    return l_att + l_feat


def export(prefix, module):
    return {f"{prefix}.{k}": v.tolist() for k, v in module.state_dict().items()}


weights = {}
weights.update(export("discom.student", student))
weights.update(export("discom.teacher", teacher))
for name, m in [("task_cl3", task_cl3), ("task_dom", task_dom), ("task_dom2", task_dom2), ("discr", discr)]:
    weights.update(export(f"discom.{name}", m))
weights.update(export("aft.att_proj", att_proj))
weights.update(export("aft.feat_proj", feat_proj))

cases = {}
for name, f in [("discom_grl", lambda x: discom(x, "grl")), ("discom_alternating", lambda x: discom(x, "alt")), ("aft", aft)]:
    x = e_s.clone().requires_grad_(True)
    v = f(x)
    (g,) = torch.autograd.grad(v, x)
    cases[name] = {"value": v.item(), "grad": g.flatten().tolist()}
cases["discom_discriminator"] = {"value": discriminator_loss().item(), "grad": []}

out = {
    "generator": f"tools/kd/make_module_fixtures.py, torch {torch.__version__}",
    "dims": {"batch": B, "student": DS, "teacher": DT, "hidden": H, "part": K, "blocks": BLOCKS},
    "inputs": {"e_s": e_s.tolist(), "e_t": e_t.tolist(), "labels": y.tolist()},
    "weights": weights,
    "cases": cases,
}
path = pathlib.Path("crates/kd-losses/tests/fixtures/torch_modules.json")
path.write_text(json.dumps(out, indent=1))
print(f"wrote {path} ({path.stat().st_size} bytes)")
