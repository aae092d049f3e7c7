"""Peer benchmark for crates/diffusion-prior/benches/prior.rs: dalle2-pytorch 1.15.6's DiffusionPrior
at the published size (dim 512, depth 12, heads 12 x 64, ff_mult 4, normformer, rotary, dropout 0.05),
on PyTorch CPU.

- training step, batch 64: forward loss (timesteps 64, cond_drop_prob 0.1, x0 prediction), backward,
  clip 0.5, AdamW (lr 1.1e-4, wd 6.02e-2, betas (0.9, 0.99), eps 1e-6), zero_grad, EMA update
  (ema_pytorch defaults) -- what the published trainer does per step;
- sampling 64 conditions with 64 DDIM steps (timesteps 1000, eta 1: DALLE2-pytorch's p_sample_loop;
  it has no Analytic-DPM, so ours is compared with this DDIM; each step is one network call for either).

The network always prepends `max_text_len` learned null text tokens: run with --max-text-len 1 and 77
(the published value). Usage:
  /work/pyenv/bin/python benches/peers/prior_dalle2.py --max-text-len 1 --threads 1
  /work/pyenv/bin/python benches/peers/prior_dalle2.py --max-text-len 77 --threads 1 --reps 2 \
      --no-warmup --sample-steps 8
Times are medians of wall and process CPU seconds (CPU time is what other processes on a shared
machine inflate least).
Versions: dalle2-pytorch 1.15.6, torch 2.x CPU, ema-pytorch 0.8.x.
"""
import argparse
import time

import torch
from dalle2_pytorch import DiffusionPrior, DiffusionPriorNetwork
from ema_pytorch import EMA


def build(max_text_len, timesteps):
    net = DiffusionPriorNetwork(dim=512, depth=12, heads=12, dim_head=64, ff_mult=4, num_timesteps=1000,
                                max_text_len=max_text_len, normformer=True, rotary_emb=True, final_proj=True,
                                norm_out=True, attn_dropout=0.05, ff_dropout=0.05)
    return DiffusionPrior(net=net, image_embed_dim=512, timesteps=timesteps, cond_drop_prob=0.1,
                          condition_on_text_encodings=False, predict_x_start=True, beta_schedule="cosine")


def timeit(fn, reps, warmup=True):
    """Median wall seconds and median process CPU seconds (all threads) over `reps` runs. CPU time
    is what other processes on a shared machine inflate least; compare it with the CPU times of
    crates/diffusion-prior/examples/step_phases.rs."""
    if warmup:
        fn()
    walls, cpus = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    walls.sort()
    cpus.sort()
    return walls[len(walls) // 2], cpus[len(cpus) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-text-len", type=int, default=77)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed first run (slow machines)")
    ap.add_argument("--only", choices=["train", "sample", "both"], default="both")
    ap.add_argument("--sample-steps", type=int, default=64,
                    help="DDIM steps per sampling run (64 as ours; fewer to time the slow 77-token case)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cond = torch.randn(64, 512)
    target = torch.randn(64, 512)

    prior = build(args.max_text_len, 64).train()
    params = [p for p in prior.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 6.02e-2}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1.1e-4, betas=(0.9, 0.99), eps=1e-6)
    ema = EMA(prior)

    def step():
        loss = prior(text_embed=cond, image_embed=target.clone())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 0.5)
        opt.step()
        opt.zero_grad()
        ema.update()

    nan = (float("nan"), float("nan"))
    train = timeit(step, args.reps) if args.only != "sample" else nan
    sampler = build(args.max_text_len, 1000).eval()

    def sample():
        with torch.no_grad():
            sampler.p_sample_loop((64, 512), text_cond=dict(text_embed=cond), timesteps=args.sample_steps)

    samp = timeit(sample, max(1, args.reps // 2), warmup=not args.no_warmup) if args.only != "train" else nan
    n_params = sum(p.numel() for p in prior.net.parameters() if p.requires_grad)
    print(f"max_text_len={args.max_text_len} threads={args.threads} params={n_params} "
          f"train_step_b64={train[0]:.3f}s (cpu {train[1]:.3f}s) "
          f"sample_ddim{args.sample_steps}_b64={samp[0]:.3f}s (cpu {samp[1]:.3f}s) torch={torch.__version__}")


if __name__ == "__main__":
    main()
