"""Check tract-studio's DDIM samples of a diffusers pipeline folder against diffusers itself.

Usage:

    python3 benches/peer/check_export.py DIR SAMPLES.safetensors --steps K [--tol 1e-4]

DIR is a DDIMPipeline folder (model_index.json, unet/, scheduler/). SAMPLES holds two tensors
written by tract-studio: "noise" (the starting x_T) and "samples" (its DDIM result), each shaped
[N, C, H, W] or [N, C*H*W] (then reshaped with the unet config's in_channels and sample_size); any
float dtype, compared in float32.

The reference is the plain deterministic DDIM loop (eta = 0) of DDIMPipeline without its final
(x / 2 + 0.5).clamp(0, 1) post-processing, with the components DDIMPipeline.from_pretrained loads
(the UNet in float32 whatever dtype its weights are stored in; the scheduler rebuilt as a
DDIMScheduler from DIR's scheduler config, as DDIMPipeline.__init__ does):

    scheduler.set_timesteps(K); x = noise
    for t in scheduler.timesteps:
        x = scheduler.step(unet(x, t).sample, t, x, eta=0.0).prev_sample

Prints diffusers' and torch's versions, the timesteps, the max abs difference (overall and per
sample) and exits 1 when it is above --tol. torch runs on the CPU with 1 thread.
"""
import argparse
import sys

import torch
from safetensors.torch import load_file

import diffusers
from diffusers import DDIMPipeline

torch.set_num_threads(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", help="DDIMPipeline folder")
    ap.add_argument("samples", help="safetensors file with 'noise' and 'samples'")
    ap.add_argument("--steps", type=int, required=True, help="num_inference_steps K")
    ap.add_argument("--tol", type=float, default=1e-4, help="max abs difference allowed")
    ap.add_argument("--batch", type=int, default=16, help="samples per UNet call")
    args = ap.parse_args()
    print(f"diffusers {diffusers.__version__}, torch {torch.__version__}")

    pipe = DDIMPipeline.from_pretrained(args.dir, torch_dtype=torch.float32)
    unet, sched = pipe.unet.eval(), pipe.scheduler
    c = unet.config.in_channels
    size = unet.config.sample_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)

    st = load_file(args.samples)
    for k in ("noise", "samples"):
        if k not in st:
            sys.exit(f"{args.samples} has no tensor {k!r} (has {sorted(st)})")

    def shaped(t, name):
        t = t.to(torch.float32)
        if t.dim() == 2 and t.shape[1] == c * h * w:
            t = t.reshape(t.shape[0], c, h, w)
        if t.dim() != 4 or tuple(t.shape[1:]) != (c, h, w):
            sys.exit(f"{name} has shape {list(t.shape)}, expected [N, {c}, {h}, {w}] or [N, {c * h * w}]")
        return t

    noise, samples = shaped(st["noise"], "noise"), shaped(st["samples"], "samples")
    if noise.shape[0] != samples.shape[0]:
        sys.exit(f"noise has {noise.shape[0]} samples, samples has {samples.shape[0]}")

    sched.set_timesteps(args.steps)
    print(f"scheduler: {sched.config.beta_schedule}, {sched.config.prediction_type}, "
          f"spacing {sched.config.timestep_spacing}, clip {sched.config.clip_sample}; "
          f"timesteps {sched.timesteps.tolist()}")
    outs = []
    with torch.no_grad():
        for i in range(0, noise.shape[0], args.batch):
            x = noise[i:i + args.batch]
            for t in sched.timesteps:
                x = sched.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
            outs.append(x)
    ref = torch.cat(outs)

    diff = (ref - samples).abs()
    per = diff.flatten(1).max(dim=1).values
    worst = diff.max().item()
    print(f"{noise.shape[0]} samples, |reference| max {ref.abs().max().item():.4g}")
    print("per-sample max abs diff: " + " ".join(f"{v:.3g}" for v in per.tolist()[:32])
          + (" ..." if per.numel() > 32 else ""))
    print(f"max abs diff {worst:.6g} (tol {args.tol:g}): {'OK' if worst <= args.tol else 'FAIL'}")
    sys.exit(0 if worst <= args.tol else 1)


if __name__ == "__main__":
    main()
