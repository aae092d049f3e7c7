"""PyTorch peer of `cargo bench -p kd-losses --bench losses`: forward + backward of each objective at
batch 64, embedding 512, float32, CPU. Same structure as the Rust versions (see the crate docs).

    /work/pyenv/bin/python tools/kd/peer_bench.py [--threads N]

Prints the median time per iteration in microseconds for each objective.
"""

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

B, D = 64, 512


def two(z):
    return torch.stack([torch.zeros_like(z), z], 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    e_s = torch.randn(B, D, requires_grad=True)
    e_t = torch.randn(B, D)
    z_s = torch.randn(B, requires_grad=True)
    z_t = torch.randn(B)
    y = torch.tensor([float(i % 3 == 0) for i in range(B)])

    def kl_binary(zs, zt, T):
        return F.kl_div(F.log_softmax(two(zs) / T, 1), F.softmax(two(zt) / T, 1), reduction="batchmean")

    def proto():
        s, t = [], []
        for k in (0, 1):
            m = y == k
            ps, pt = e_s[m].mean(0, keepdim=True), e_t[m].mean(0, keepdim=True)
            s.append(F.cosine_similarity(e_s, ps.expand_as(e_s), 1, 1e-5))
            t.append(F.cosine_similarity(e_t, pt.expand_as(e_t), 1, 1e-5))
        p = ((torch.stack(s, 1) - torch.stack(t, 1)) ** 2).mean()
        kd = F.kl_div(F.log_softmax(two(z_s) / 10, 1), F.softmax(two(z_t) / 10, 1), reduction="none").mean()
        return F.binary_cross_entropy_with_logits(z_s, y) + 10 * kd + 0.1 * p

    def contrastive():
        d = torch.cdist(F.normalize(e_s, dim=1), F.normalize(e_t, dim=1))
        eye = torch.eye(B, dtype=torch.bool)
        return (d[eye] ** 2).mean() + (F.relu(1 - d[~eye]) ** 2).mean()

    att, feat = nn.Linear(D, D), nn.Linear(D, D)

    def aft():
        def a(f):
            return F.normalize(f.view(B, 8, -1).pow(2).mean(-1), dim=1)

        def fb(f):
            return F.normalize(f.view(B, 8, -1), dim=-1)

        return ((a(att(e_s)) - a(e_t)) ** 2).mean() + ((fb(feat(e_s)) - fb(e_t)) ** 2).sum(-1).mean()

    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.inv = nn.Linear(D, 512)
            self.proj = nn.Linear(512, 256)
            self.norm = nn.LayerNorm(256)
            self.s0, self.s1 = nn.Linear(D, 512), nn.Linear(512, 512)
            self.cl = nn.Linear(512, 1)

        def forward(self, x):
            inv = F.relu(self.norm(self.proj(F.relu(self.inv(x)))))
            s = F.relu(self.s1(F.relu(self.s0(x))))
            return inv, s[:, :256], s[:, 256:]

    ba, bb = Branch(), Branch()
    cl3, dom, dom2, discr = (nn.Linear(256, 1) for _ in range(4))

    class GRL(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            return -g

    def discom():
        bce = F.binary_cross_entropy_with_logits
        ia, fa, ra = ba(e_s)
        ib, fb_, rb = bb(e_t)
        one, zero = torch.ones(B), torch.zeros(B)
        cl = (bce(ba.cl(torch.cat([ia, fa], 1))[:, 0], y) + bce(bb.cl(torch.cat([ib, fb_], 1))[:, 0], y)) / 2
        aux = sum(bce(cl3(v)[:, 0], y) for v in (ia, ib, fa, fb_)) / 2
        mod = (bce(dom(fa)[:, 0], zero) + bce(dom(fb_)[:, 0], one) + bce(dom2(ra)[:, 0], zero) + bce(dom2(rb)[:, 0], one)) / 4
        adv = (bce(discr(GRL.apply(ia))[:, 0], zero) + bce(discr(GRL.apply(ib))[:, 0], one)) / 2
        n = lambda v: F.normalize(v, dim=1)
        inf, irr, inv = torch.cat([fa, fb_]), torch.cat([ra, rb]), torch.cat([ia, ib])
        orth = (n(inf) * n(irr)).sum(1).mean() + (n(inf) * n(inv)).sum(1).mean()
        return cl + aux + mod + adv + orth

    objectives = {
        "mse": lambda: F.mse_loss(e_s, e_t),
        "cosine": lambda: (1 - F.cosine_similarity(e_s, e_t, 1)).mean(),
        "smooth_l1": lambda: F.smooth_l1_loss(e_s, e_t),
        "bce": lambda: F.binary_cross_entropy_with_logits(z_s, torch.sigmoid(z_t)),
        "0.8*mse+0.2*bce": lambda: 0.8 * F.mse_loss(e_s, e_t)
        + 0.2 * F.binary_cross_entropy_with_logits(z_s, torch.sigmoid(z_t)),
        "hinton": lambda: 0.9 * 16 * kl_binary(z_s, z_t, 4.0) + 0.1 * F.binary_cross_entropy_with_logits(z_s, y),
        "protokd": proto,
        "contrastive": contrastive,
        "aft_kd": aft,
        "discom_kd": discom,
    }
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name, f in objectives.items():
        for _ in range(5):
            f().backward()
        times = []
        end = time.perf_counter() + args.seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            f().backward()
            times.append(time.perf_counter() - t0)
        print(f"{name:>16}: {statistics.median(times) * 1e6:9.1f} us")


if __name__ == "__main__":
    main()
