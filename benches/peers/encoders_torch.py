"""PyTorch CPU peers of the cxr-encoder and ctpa-encoder criterion benches (same shapes, random
weights, eval mode, no_grad, f32, threads = cores, as Candle uses).

Run: /work/pyenv/bin/python benches/peers/encoders_torch.py
Compare with:
  cargo bench -p cxr-encoder --bench cxr_forward -- --warm-up-time 1 --measurement-time 3
  cargo bench -p ctpa-encoder --bench ctpa_forward -- --warm-up-time 1 --measurement-time 3
"""
import os
import statistics
import time

import open_clip
import timm
import torch
import torchvision
from torchvision.models.resnet import BasicBlock, ResNet
from transformers import Dinov2Config, Dinov2Model
from transformers.models.dinov2.modeling_dinov2 import Dinov2Encoder

torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count())))
torch.manual_seed(0)


def timeit(name, fn, reps=10):
    with torch.no_grad():
        fn()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    print(f"{name:32s} median {statistics.median(times) * 1e3:9.1f} ms  min {min(times) * 1e3:9.1f} ms")


x = torch.rand(2, 3, 224, 224)
resnet = torchvision.models.resnet50().eval()
resnet.fc = torch.nn.Linear(2048, 512)
timeit("cxr resnet50 b2", lambda: resnet(x))
for name, (hidden, heads) in {"dinov2_small": (384, 6), "dinov2_base": (768, 12)}.items():
    m = Dinov2Model(Dinov2Config(hidden_size=hidden, num_attention_heads=heads, num_hidden_layers=12, image_size=518, patch_size=14)).eval()
    proj = torch.nn.Linear(hidden, 512)
    timeit(f"cxr {name} b2", lambda: proj(m(pixel_values=x).pooler_output))
clip = open_clip.timm_model.TimmModel("vit_base_patch16_224", embed_dim=512, image_size=224, pool="", proj="linear", proj_bias=False).eval()
proj = torch.nn.Linear(512, 512)
timeit("cxr clip_vit_b16 b2", lambda: proj(clip(x)))


class SliceResNet(ResNet):
    """torchvision ResNet with basic blocks, 1-channel input, optional narrow widths."""

    def __init__(self, layers, stem, scale):
        self.scale = scale
        super().__init__(BasicBlock, layers)
        self.conv1 = torch.nn.Conv2d(1, stem, 7, 2, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(stem)
        self.fc = torch.nn.Identity()

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:
            self.inplanes = 64 // self.scale
        return super()._make_layer(block, planes // self.scale, blocks, stride, dilate)


class Ctpa(torch.nn.Module):
    def __init__(self, cnn, in_dim, width, depth, heads, positions=64):
        super().__init__()
        self.cnn = cnn
        self.proj = torch.nn.Linear(in_dim, width)
        self.cls = torch.nn.Parameter(torch.randn(1, 1, width))
        self.pos = torch.nn.Parameter(torch.randn(1, positions + 1, width))
        self.encoder = Dinov2Encoder(Dinov2Config(hidden_size=width, num_hidden_layers=depth, num_attention_heads=heads))
        self.norm = torch.nn.LayerNorm(width, eps=1e-6)
        self.embed = torch.nn.Linear(width, 512)
        self.head = torch.nn.Linear(512, 1)

    def forward(self, vol):  # (slices, h, w)
        s = self.cnn(vol[:, None])
        h = torch.cat([self.cls, self.proj(s)[None]], 1) + self.pos
        h = self.norm(self.encoder(h).last_hidden_state)
        z = self.embed(h[:, 0])
        return z, self.head(z)


vol = torch.rand(64, 128, 128)
small = Ctpa(SliceResNet([1, 1, 1, 1], 8, 8), 64, 64, 2, 4).eval()
timeit("ctpa small 128x128x64", lambda: small(vol))
paper = Ctpa(SliceResNet([2, 2, 2, 2], 64, 1), 512, 384, 12, 6).eval()
timeit("ctpa paper 128x128x64", lambda: paper(vol))
print("torch", torch.__version__, "threads", torch.get_num_threads(), "timm", timm.__version__)
