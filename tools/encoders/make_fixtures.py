"""Tiny random-weight reference models for cxr-encoder / ctpa-encoder parity tests.

Run: /work/pyenv/bin/python tools/encoders/make_fixtures.py
Writes crates/cxr-encoder/tests/fixtures/*.safetensors and crates/ctpa-encoder/tests/fixtures/*.safetensors
(each well under 1 MB).
Made with torch 2.x CPU, transformers 5.24.0, timm 1.0.31, open-clip-torch 2.32.0,
torchvision 0.29.2, safetensors 0.8.0 (versions are written into each file's metadata). Tensor
values are reproducible; the bytes of a rerun can differ because the metadata order of the header varies.
"""
import os

import open_clip
import timm
import torch
import torchvision
import transformers
from safetensors.torch import save_file
from torchvision.models.resnet import Bottleneck, ResNet
from transformers import Dinov2Config, Dinov2Model

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "cxr-encoder", "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)
META = {
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "timm": timm.__version__,
    "open_clip": open_clip.__version__,
    "torchvision": torchvision.__version__,
}
torch.manual_seed(0)


def randomize(model, scale=0.2):
    """Replace every parameter and buffer by random values so that no default (ones, zeros)
    hides a naming or layout mistake."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * scale + (1.0 if name.endswith(("norm1.weight", "norm2.weight", "norm.weight", "layernorm.weight")) else 0.0))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.1)


def save(name, tensors):
    path = os.path.join(OUT, name)
    save_file({k: v.detach().contiguous().float() if v.is_floating_point() else v.contiguous() for k, v in tensors.items()}, path, metadata=META)
    print(name, os.path.getsize(path), "bytes")


# DINOv2 (transformers Dinov2Model): width 32, 2 layers, 2 heads, 16 px / patch 4 (4x4 positions).
cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=4,
                   image_size=16, patch_size=4, num_channels=3, layerscale_value=1.0)
dino = Dinov2Model(cfg).eval()
randomize(dino)
xa = torch.randn(2, 3, 16, 16)
xb = torch.randn(1, 3, 20, 28)  # non-square, 5x7 patches: bicubic position interpolation
with torch.no_grad():
    ya = dino(pixel_values=xa).last_hidden_state
    yb = dino(pixel_values=xb).last_hidden_state
save("dinov2_tiny.safetensors", dino.state_dict())
save("dinov2_tiny_io.safetensors", {"input_a": xa, "output_a": ya, "input_b": xb, "output_b": yb})

# CLIP vision tower as open_clip builds it for BiomedCLIP (TimmModel around a timm ViT, pool "",
# proj "linear", no bias), shrunk to width 32, 2 blocks, 16 px / patch 4, embedding 24.
orig_create = timm.create_model


def tiny_vit(name, **kw):
    kw.update(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2)
    return orig_create(name, **kw)


open_clip.timm_model.timm.create_model = tiny_vit
visual = open_clip.timm_model.TimmModel("vit_base_patch16_224", embed_dim=24, image_size=16, pool="", proj="linear", proj_bias=False).eval()
open_clip.timm_model.timm.create_model = orig_create
randomize(visual)
xc = torch.randn(2, 3, 16, 16)
with torch.no_grad():
    yc = visual(xc)
save("clip_tiny.safetensors", {f"visual.{k}": v for k, v in visual.state_dict().items()})
save("clip_tiny_io.safetensors", {"input": xc, "output": yc})


# ResNet-50 architecture (torchvision Bottleneck, v1.5 strides) at 1/8 width and [2, 1, 1, 1] blocks.
class SmallResNet(ResNet):
    def __init__(self):
        super().__init__(Bottleneck, [2, 1, 1, 1], num_classes=5)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:
            self.inplanes = 8
        return super()._make_layer(block, planes // 8, blocks, stride, dilate)


net = SmallResNet()
net.conv1 = torch.nn.Conv2d(3, 8, 7, 2, 3, bias=False)
net.bn1 = torch.nn.BatchNorm2d(8)
net.fc = torch.nn.Linear(64 * 4, 5)
randomize(net, scale=0.3)
state = {k: v.clone() for k, v in net.state_dict().items()}
head = net.fc
net.fc = torch.nn.Identity()
xr = torch.randn(3, 3, 35, 33)
net.eval()
with torch.no_grad():
    yr_eval = net(xr)
net.train()
with torch.no_grad():
    yr_train = net(xr)
save("resnet_tiny.safetensors", state)
save("resnet_tiny_io.safetensors", {
    "input": xr, "output_eval": yr_eval, "output_train": yr_train,
    "bn1_running_mean_after": net.bn1.running_mean, "bn1_running_var_after": net.bn1.running_var,
})

# 1D linear resampling of position embeddings (ctpa-encoder's sequence ViT).
pos = torch.randn(1, 3, 7)  # (1, dim, len) as F.interpolate wants
save("position_io.safetensors", {
    "pos": pos[0].T.contiguous(),
    "to_13": torch.nn.functional.interpolate(pos, size=13, mode="linear", align_corners=False)[0].T,
    "to_4": torch.nn.functional.interpolate(pos, size=4, mode="linear", align_corners=False)[0].T,
})
grid = torch.randn(1, 5, 3, 3)
save("grid_io.safetensors", {
    "grid": grid[0].permute(1, 2, 0).reshape(9, 5),
    "to_5x7": torch.nn.functional.interpolate(grid, size=(5, 7), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).reshape(35, 5),
    "to_2x2": torch.nn.functional.interpolate(grid, size=(2, 2), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).reshape(4, 5),
})

# ctpa-encoder's patch-free sequence ViT, computed with transformers' own DINOv2 encoder and final
# norm (the `dino` model above): slice embeddings -> input_proj -> [CLS] + linearly resampled
# positions -> encoder -> layernorm -> CLS -> embed -> head. Each sequence runs alone, unpadded, so
# the Rust side checks its padding and masking against it.
torch.manual_seed(1)
in_dim, lengths = 10, [5, 3, 16]
proj = torch.nn.Linear(in_dim, 32)
embed = torch.nn.Linear(32, 12)
head = torch.nn.Linear(12, 1)
for m in (proj, embed, head):
    randomize(m, scale=0.3)
seq = torch.randn(len(lengths), max(lengths), in_dim)
pos = dino.embeddings.position_embeddings  # (1, 17, 32): 16 learned positions
zs, logits = [], []
with torch.no_grad():
    for b, n in enumerate(lengths):
        x = proj(seq[b, :n])
        rest = torch.nn.functional.interpolate(pos[0, 1:].T[None], size=n, mode="linear", align_corners=False)[0].T
        h = torch.cat([dino.embeddings.cls_token[0] + pos[0, :1], x + rest])[None]
        h = dino.layernorm(dino.encoder(h).last_hidden_state)
        z = embed(h[0, 0])
        zs.append(z)
        logits.append(head(z)[0])
weights = {k: v for k, v in dino.state_dict().items() if not k.startswith("embeddings.patch") and k != "embeddings.mask_token"}
weights.update({f"input_proj.{k}": v for k, v in proj.state_dict().items()})
weights.update({f"embed.{k}": v for k, v in embed.state_dict().items()})
weights.update({f"head.{k}": v for k, v in head.state_dict().items()})
out_ctpa = os.path.join(OUT, "..", "..", "..", "ctpa-encoder", "tests", "fixtures")
os.makedirs(out_ctpa, exist_ok=True)
OUT = out_ctpa
save("sequence_vit_tiny.safetensors", weights)
save("sequence_vit_tiny_io.safetensors", {"seq": seq, "lengths": torch.tensor(lengths, dtype=torch.int64), "z": torch.stack(zs), "logit": torch.stack(logits)})
