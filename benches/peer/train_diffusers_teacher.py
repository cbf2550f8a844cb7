"""Train a small diffusers UNet2DModel on Fashion-MNIST as a teacher for tract-studio's distillation.

Usage:

    apt-get install dataset-fashion-mnist        # idx files in /usr/share/datasets/fashion-mnist
    pip install torch diffusers safetensors numpy
    python3 benches/peer/train_diffusers_teacher.py --out DIR --steps S [--batch 64] [--resume]

Other data: --images FILE, a safetensors file of `images` [N, C*H*W] in [-1, 1] (NCHW) and
`shape` [C, H, W], as tract-studio trains on them; the colour emoji set:

    cargo run --release --example dump_data -- emoji train emoji-train.safetensors
    python3 benches/peer/train_diffusers_teacher.py --images emoji-train.safetensors --out DIR --steps S

diffusers' unconditional recipe (examples/unconditional_image_generation/train_unconditional.py)
on the CPU with torch at 1 thread: DDPMScheduler (1000 steps, linear betas 1e-4..0.02, epsilon
prediction), MSE between predicted and true noise at uniform timesteps, AdamW (betas 0.95/0.999,
weight decay 1e-6) with linear warmup then cosine decay (diffusers.optimization.get_scheduler),
gradient clipping at 1.0 and an EMA of the weights (diffusers.training_utils.EMAModel with warmup,
inv_gamma 1, power 3/4, max decay 0.9999). Images are scaled to [-1, 1] and padded 28 -> 32 with
the background value -1 (2 pixels on each side).

Model: UNet2DModel(sample_size 32, 1 channel, block_out_channels [16, 32, 48] (--channels),
layers_per_block 1, down [DownBlock2D, AttnDownBlock2D, DownBlock2D], up [UpBlock2D,
AttnUpBlock2D, UpBlock2D], norm_num_groups 8, attention_head_dim 16 (2 heads at 32 channels, 3 in
the 48-channel middle block)): 438,145 parameters. ([32, 64, 64] would be 1.11M parameters and
about 2.3x slower per step on one CPU thread.)

Every --save-min minutes and at the end it writes, atomically (temp file / folder, then rename):
  DIR/state.pt   model, EMA, optimizer, LR schedule, step, RNG states (python, numpy, torch and the
                 generator that draws batches, timesteps and noise); --resume continues from it.
  DIR/pipeline/  the EMA weights as a DDIMPipeline folder (save_pretrained, safetensors) with a
                 DDIMScheduler of the same betas, trailing timestep spacing, clip_sample true.
Progress lines: step, loss (mean since the last line), lr, steps/s, ETA.
"""
import argparse
import gzip
import math
import os
import random
import shutil
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import diffusers
from diffusers import DDIMPipeline, DDIMScheduler, DDPMScheduler, UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

# one thread by default (the recipe measured here); TORCH_THREADS=N to use more cores
torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))

DATA = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
BETAS = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)


def load_file(path):
    """f32 [N, C, H, W] in [-1, 1] from a dump_data file (examples/dump_data.rs)."""
    from safetensors.numpy import load_file as load
    t = load(path)
    c, h, w = (int(v) for v in t["shape"])
    assert h == w == 32, f"{path}: {h}x{w} images; this recipe's UNet is for 32x32"
    return torch.from_numpy(t["images"].reshape(-1, c, h, w).copy())


def load_images(path):
    """f32 [N, 1, 32, 32] in [-1, 1]: the 28x28 images padded with 0 (-> -1 after scaling)."""
    with gzip.open(path, "rb") as f:
        magic, n, h, w = struct.unpack(">IIII", f.read(16))
        assert magic == 2051, magic
        a = np.frombuffer(f.read(n * h * w), dtype=np.uint8).reshape(n, 1, h, w)
    a = torch.from_numpy(np.pad(a, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=0).copy())
    return a.to(torch.float32) / 127.5 - 1.0


def make_unet(channels, colours=1):
    return UNet2DModel(
        sample_size=32, in_channels=colours, out_channels=colours, layers_per_block=1,
        block_out_channels=channels, norm_num_groups=8, attention_head_dim=16,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    )


def atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def export_pipeline(model, ema, out):
    """Write the EMA weights as out/pipeline (a DDIMPipeline folder), replacing it atomically."""
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    try:
        sched = DDIMScheduler(**BETAS, prediction_type="epsilon", clip_sample=True,
                              timestep_spacing="trailing")
        final, tmp, old = (os.path.join(out, n) for n in ("pipeline", "pipeline.tmp", "pipeline.old"))
        shutil.rmtree(tmp, ignore_errors=True)
        DDIMPipeline(unet=model, scheduler=sched).save_pretrained(tmp, safe_serialization=True)
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(final):
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        ema.restore(model.parameters())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, required=True, help="total optimizer steps")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--save-min", type=float, default=5.0, help="minutes between saves")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", default="16,32,48", help="block_out_channels (new runs only)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/state.pt")
    ap.add_argument("--images", help="a dump_data safetensors file (default: Fashion-MNIST's idx)")
    ap.add_argument("--no-save", action="store_true", help="write nothing (for timing runs)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    state_path = os.path.join(args.out, "state.pt")

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    images = load_file(args.images) if args.images else load_images(DATA)
    channels = tuple(int(c) for c in args.channels.split(","))
    if args.resume:
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        channels = tuple(st["channels"])
    model = make_unet(channels, images.shape[1])
    n_params = sum(p.numel() for p in model.parameters())
    noise_sched = DDPMScheduler(**BETAS, prediction_type="epsilon")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.95, 0.999), weight_decay=1e-6,
                            eps=1e-8)
    lr_sched = get_scheduler("cosine", optimizer=opt, num_warmup_steps=args.warmup,
                             num_training_steps=args.steps)
    ema = EMAModel(model.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75,
                   model_cls=UNet2DModel, model_config=model.config)
    step = 0
    if args.resume:
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["optimizer"])
        lr_sched.load_state_dict(st["lr_scheduler"])
        step = st["step"]
        random.setstate(st["rng_python"])
        np.random.set_state(st["rng_numpy"])
        torch.set_rng_state(st["rng_torch"])
        gen.set_state(st["rng_gen"])
        print(f"resumed from {state_path} at step {step}", flush=True)
    print(f"diffusers {diffusers.__version__}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; {images.shape[0]} images, {n_params} params, batch "
          f"{args.batch}, steps {step} -> {args.steps}", flush=True)

    def save():
        if args.no_save:
            return
        atomic_save({
            "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
            "lr_scheduler": lr_sched.state_dict(), "step": step, "args": vars(args), "channels": list(channels),
            "rng_python": random.getstate(), "rng_numpy": np.random.get_state(),
            "rng_torch": torch.get_rng_state(), "rng_gen": gen.get_state(),
        }, state_path)
        export_pipeline(model, ema, args.out)
        print(f"saved step {step} to {state_path} and {os.path.join(args.out, 'pipeline')}",
              flush=True)

    model.train()
    t0 = t_log = t_save = time.time()
    step0, step_log, loss_sum, loss_n = step, step, 0.0, 0
    while step < args.steps:
        idx = torch.randint(0, images.shape[0], (args.batch,), generator=gen)
        clean = images[idx]
        noise = torch.randn(clean.shape, generator=gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (args.batch,), generator=gen)
        noisy = noise_sched.add_noise(clean, noise, t)
        loss = F.mse_loss(model(noisy, t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        ema.step(model.parameters())
        step += 1
        loss_sum += loss.item()
        loss_n += 1
        now = time.time()
        if step % args.log_every == 0 or step == args.steps:
            rate = (step - step_log) / (now - t_log)
            avg = (step - step0) / (now - t0)
            eta = (args.steps - step) / max(avg, 1e-9)
            print(f"step {step}/{args.steps} loss {loss_sum / loss_n:.4f} lr {lr_sched.get_last_lr()[0]:.2e} "
                  f"{rate:.2f} steps/s (avg {avg:.2f}) ema_decay {ema.cur_decay_value or 0:.4f} "
                  f"ETA {eta / 60:.1f} min", flush=True)
            t_log, step_log, loss_sum, loss_n = now, step, 0.0, 0
        if now - t_save >= args.save_min * 60 and step < args.steps:
            save()
            t_save = time.time()
    save()
    print(f"done: {step} steps in {(time.time() - t0) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
