"""Forward-parity fixture for diffusion-prior's PriorNetwork.

Builds a SMALL dalle2-pytorch DiffusionPriorNetwork (same code path as the published prior: learned
time table, null text encodings, multi-query cosine-sim attention with null kv, rotary on part of the
head, T5 relative bias, SwiGLU + NormFormer, stable final norm, final projection), exports its
state dict, inputs and outputs to safetensors, and prints the parameter count of the published
configuration (dim 512, depth 12, max_text_len 77).

Versions used: dalle2-pytorch 1.15.6, rotary-embedding-torch 0.9.1, torch (CPU), safetensors 0.8.0.
Run: /work/pyenv/bin/python tools/prior/export_fixture.py
Writes: crates/diffusion-prior/tests/fixtures/dalle2_small.safetensors and dalle2_small.json
"""
import json
import os

import torch
from dalle2_pytorch import DiffusionPriorNetwork
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "crates", "diffusion-prior", "tests", "fixtures")


def count(net):
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def main():
    torch.manual_seed(0)
    cfg = dict(dim=32, depth=2, heads=2, dim_head=40, ff_mult=2, num_timesteps=16, max_text_len=5,
               num_time_embeds=1, num_image_embeds=1, num_text_embeds=1, normformer=True,
               rotary_emb=True, final_proj=True, norm_out=True, attn_dropout=0.0, ff_dropout=0.0)
    net = DiffusionPriorNetwork(**cfg).eval()
    # Make the gains non-trivial so that a wrong norm placement shows.
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(".g"):
                p.add_(0.1 * torch.randn_like(p))
    b = 3
    x = torch.randn(b, 32)
    c = torch.randn(b, 32)
    t = torch.tensor([0, 7, 15])
    with torch.no_grad():
        out = net(x, t, text_embed=c)
        out_null = net(x, t, text_embed=c, text_cond_drop_prob=1.0, image_cond_drop_prob=1.0)
    # Rotary frequencies are a shared, non-trainable buffer: Rust recomputes them.
    tensors = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items() if not k.endswith("rotary_emb.freqs")}
    tensors.update({
        "input.x": x, "input.cond": c, "input.t": t.to(torch.int64),
        "output.cond": out.contiguous(), "output.null": out_null.contiguous(),
    })
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, os.path.join(OUT, "dalle2_small.safetensors"))

    published = DiffusionPriorNetwork(dim=512, depth=12, heads=12, dim_head=64, ff_mult=4, num_timesteps=1000,
                                      max_text_len=77, normformer=True, rotary_emb=True, final_proj=True,
                                      norm_out=True, attn_dropout=0.05, ff_dropout=0.05)
    no_prefix = DiffusionPriorNetwork(dim=512, depth=12, heads=12, dim_head=64, ff_mult=4, num_timesteps=1000,
                                      max_text_len=0, normformer=True, rotary_emb=True, final_proj=True,
                                      norm_out=True)
    meta = {
        "config": cfg,
        "small_params": count(net),
        "published_params": count(published),
        "published_params_max_text_len_0": count(no_prefix),
        "versions": {"torch": torch.__version__, "dalle2_pytorch": __import__("dalle2_pytorch.version", fromlist=["x"]).__version__},
    }
    with open(os.path.join(OUT, "dalle2_small.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(json.dumps(meta, indent=2))
    print("tensors:", sorted(k for k in tensors))


if __name__ == "__main__":
    main()
