"""PyTorch peer for `tract-studio bench --unet --net ddpm-cifar10`: diffusers' own UNet2DModel
with google/ddpm-cifar10-32's configuration (35,746,307 parameters, randomly initialised; no
download), timed at the points the Rust side measures: a training step (forward, MSE to the
input, backward, Adam) at batch 8, a forward pass at batch 8 and 32, on 3x32x32 inputs at
random timesteps. Median of --reps after a warm-up.

Usage: python3 benches/peer/unet2d.py [--threads 2] [--reps 3] [--device cpu] [--json]
(a dev tool; torch and diffusers are not dependencies). --json prints one JSON object per
point with the process's peak RSS (MiB) after it.
"""
import argparse
import json
import resource
import time

import torch
from diffusers import UNet2DModel

DDPM_CIFAR10 = dict(
    sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
    block_out_channels=(128, 256, 256, 256),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=None, norm_num_groups=32, norm_eps=1e-6, downsample_padding=0,
    flip_sin_to_cos=False, freq_shift=1,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--size", default="ddpm-cifar10", help="only ddpm-cifar10")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    net = UNet2DModel(**DDPM_CIFAR10).to(dev)
    params = sum(p.numel() for p in net.parameters())
    head = {"parameters": params, "expected": 35746307, "torch": torch.__version__}
    print(json.dumps(head) if a.json else head, flush=True)
    opt = torch.optim.Adam(net.parameters(), lr=2e-4)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        fn()
        sync()
        ts = []
        for _ in range(a.reps):
            t = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t)
        return sorted(ts)[len(ts) // 2]

    def report(what, b, t):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        r = {"what": what, "batch": b, "ms": t * 1e3, "images_per_s": b / t, "peak_mib": peak}
        print(json.dumps(r) if a.json else r, flush=True)

    for train, b in ((True, 8), (False, 8), (False, 32)):
        x = torch.randn(b, 3, 32, 32, device=dev)
        t = torch.randint(0, 1000, (b,), device=dev)
        if train:
            def step():
                opt.zero_grad()
                loss = (net(x, t).sample - x).pow(2).mean()
                loss.backward()
                opt.step()
            report("train", b, timed(step))
        else:
            with torch.no_grad():
                report("sample", b, timed(lambda: net(x, t).sample))


if __name__ == "__main__":
    main()
