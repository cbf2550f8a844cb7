"""PyTorch peer of tract-studio's small UNet (src/model/unet.rs), for throughput comparison.

Same layers, widths and order: Fourier time embedding (16 frequencies + log-SNR) -> MLP,
conv_in, per level residual blocks (GroupNorm, SiLU, 3x3 convs, time projection, 1x1 skip when
the width changes) and a stride-2 conv between levels, a middle block with single-head
attention, an up path with skip concatenation, nearest x2 upsampling + conv, GroupNorm, SiLU,
conv_out; output x0 = alpha x - sigma F. The parameter count must equal the Rust model's.

Usage: python3 benches/peer/unet.py [--threads 2] [--size tiny|small] [--device cpu|cuda] [--json]
(a dev tool; torch is not a dependency). `tract-studio bench --unet` runs it with --json and
prints both side by side; --json prints one JSON object per measurement, with the process's
peak RSS (MiB) after it. TRACT_BENCH_ONLY=sample64,train64 (as for `tract-studio bench`) measures
only those points.
"""
import argparse
import json
import math
import os
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Res(nn.Module):
    def __init__(self, i, o, e, groups):
        super().__init__()
        self.n1 = nn.GroupNorm(min(groups, i), i)
        self.c1 = nn.Conv2d(i, o, 3, padding=1)
        self.e = nn.Linear(e, o)
        self.n2 = nn.GroupNorm(min(groups, o), o)
        self.c2 = nn.Conv2d(o, o, 3, padding=1)
        self.skip = nn.Conv2d(i, o, 1) if i != o else None

    def forward(self, x, emb):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.e(F.silu(emb))[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class Attn(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.n = nn.GroupNorm(min(groups, c), c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.n(x)).reshape(n, 3 * c, h * w).chunk(3, dim=1)
        att = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=2)
        return x + self.proj((v @ att.transpose(1, 2)).reshape(n, c, h, w))


class UNet(nn.Module):
    def __init__(self, channels=1, base=32, mults=(1, 2, 2), blocks=1, groups=8, freqs=16):
        super().__init__()
        self.freqs, self.groups, self.blocks, self.mults = freqs, groups, blocks, mults
        e = 4 * base
        self.temb0 = nn.Linear(2 * freqs + 1, e)
        self.temb1 = nn.Linear(e, e)
        self.cin = nn.Conv2d(channels, base, 3, padding=1)
        ch, skips = base, [base]
        self.down = nn.ModuleList()
        for lvl, m in enumerate(mults):
            for _ in range(blocks):
                self.down.append(Res(ch, base * m, e, groups))
                ch = base * m
                skips.append(ch)
            if lvl + 1 < len(mults):
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid0 = Res(ch, ch, e, groups)
        self.attn = Attn(ch, groups)
        self.mid1 = Res(ch, ch, e, groups)
        self.up = nn.ModuleList()
        for lvl, m in reversed(list(enumerate(mults))):
            for _ in range(blocks + 1):
                s = skips.pop()
                self.up.append(Res(ch + s, base * m, e, groups))
                ch = base * m
            if lvl > 0:
                self.up.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.nout = nn.GroupNorm(min(groups, ch), ch)
        self.cout = nn.Conv2d(ch, channels, 3, padding=1)

    def embedding(self, tau, logsnr):
        f = torch.tensor([(1.0 + k) ** 1.5 * math.pi / 2 for k in range(self.freqs)], device=tau.device)
        a = tau[:, None] * f[None, :]
        feats = torch.stack([a.sin(), a.cos()], dim=2).reshape(tau.shape[0], -1)
        return torch.cat([feats, (logsnr / 20).clamp(-2, 2)[:, None]], dim=1)

    def forward(self, x, alpha, sigma, tau, logsnr):
        emb = self.temb1(F.silu(self.temb0(self.embedding(tau, logsnr))))
        h = self.cin(x)
        hs = [h]
        it = iter(self.down)
        for lvl, _ in enumerate(self.mults):
            for _ in range(self.blocks):
                h = next(it)(h, emb)
                hs.append(h)
            if lvl + 1 < len(self.mults):
                h = next(it)(h)
                hs.append(h)
        h = self.mid1(self.attn(self.mid0(h, emb)), emb)
        it = iter(self.up)
        for lvl, _ in reversed(list(enumerate(self.mults))):
            for _ in range(self.blocks + 1):
                h = next(it)(torch.cat([h, hs.pop()], dim=1), emb)
            if lvl > 0:
                h = next(it)(F.interpolate(h, scale_factor=2, mode="nearest"))
        f = self.cout(F.silu(self.nout(h)))
        return alpha[:, None, None, None] * x - sigma[:, None, None, None] * f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--size", choices=["tiny", "small"], default="small")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    net = UNet(base=16 if args.size == "tiny" else 32).to(dev)
    params = sum(p.numel() for p in net.parameters())
    expected = 268401 if args.size == "tiny" else 1062625
    if args.json:
        print(json.dumps({"parameters": params, "expected": expected, "torch": torch.__version__, "device": str(dev)}))
    else:
        print(f"parameters: {params} (tract-studio {args.size} UNet: {expected})")
    opt = torch.optim.Adam(net.parameters(), lr=2e-4)

    def inputs(b):
        u = torch.rand(b)
        lam = -2 * torch.log(torch.tan((math.atan(math.exp(10)) - math.atan(math.exp(-10))) * u + math.atan(math.exp(-10))))
        return tuple(t.to(dev) for t in (torch.randn(b, 1, 32, 32), torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt(), u, lam))

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def report(what, b, t):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        if args.json:
            print(json.dumps({"what": what, "batch": b, "ms": t * 1e3, "images_per_s": b / t, "peak_mib": peak}), flush=True)
        else:
            print(f"{what}, batch {b}: {t * 1e3:.0f} ms = {b / t:.1f} images/s (peak RSS {peak:.0f} MiB)")

    def timed(fn):
        fn()
        sync()
        ts = []
        for _ in range(args.reps):
            t = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t)
        return sorted(ts)[len(ts) // 2]

    only = os.environ.get("TRACT_BENCH_ONLY")

    def wanted(what, b):
        return only is None or f"{what}{b}" in [p.strip() for p in only.split(",")]

    for b in (64, 256):
        if not wanted("train", b):
            continue
        x, a, s, u, lam = inputs(b)

        def step():
            opt.zero_grad()
            loss = (net(x, a, s, u, lam) - x).pow(2).mean()
            loss.backward()
            opt.step()

        report("train", b, timed(step))
    for b in (64, 256):
        if not wanted("sample", b):
            continue
        x, a, s, u, lam = inputs(b)
        with torch.no_grad():
            t = timed(lambda: net(x, a, s, u, lam))
        report("sample", b, t)


if __name__ == "__main__":
    main()
