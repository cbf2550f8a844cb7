"""Golden fixtures from diffusers for tract-studio's UNet2DModel loader and DDIM sampler.

Usage (a dev tool; torch and diffusers are not dependencies of tract-studio):

    pip install torch diffusers safetensors numpy
    python3 benches/peer/diffusers_golden.py --out tests/fixtures/diffusers

Generated with diffusers 0.42.1, torch 2.15.0 (CPU, 1 thread), safetensors 0.8.0, numpy 2.4.6,
Python 3.11.7. Re-running with the same versions reproduces the weights and every tensor bit for
bit (only the order of the metadata entries in golden.safetensors' header may change); other
versions may differ in the last bits (and in the `_diffusers_version` field of the configs).

Each case is a tiny, seeded DDIMPipeline folder written by `DDIMPipeline.save_pretrained(dir,
safe_serialization=True)` and then post-processed as the case needs:

    <out>/<case>/model_index.json
    <out>/<case>/unet/config.json
    <out>/<case>/unet/diffusion_pytorch_model.safetensors            (unsharded cases)
    <out>/<case>/unet/diffusion_pytorch_model-0000i-of-0000n.safetensors
    <out>/<case>/unet/diffusion_pytorch_model.safetensors.index.json  (sharded case)
    <out>/<case>/scheduler/scheduler_config.json
    <out>/<case>/golden.safetensors

Weights start at diffusers' init and then every parameter gets `p += 0.05 * randn` (fixed seed), so
no tensor is zero or at its default value and every one affects the outputs.

golden.safetensors holds only F32 tensors (metadata: diffusers / torch versions, case name):

    "x"            [3, C, H, W]  seeded N(0, 1) inputs
    "timesteps"    [3]           F32 holding integer values: [999, 500, 3] ([499, 250, 3] for the
                                 500-step case); passed to the UNet as int64
    "unet_out"     [3, C, H, W]  unet(x, timesteps).sample, model in float32
    "noise"        [4, C, H, W]  seeded N(0, 1) (torch.randn with torch.Generator().manual_seed(s),
                                 i.e. exactly what DDIMPipeline(generator=...) would draw)
    "ddim_K"       [4, C, H, W]  plain DDIM loop (eta = 0) from "noise", before the pipeline's
                                 (x / 2 + 0.5).clamp(0, 1) post-processing, for K in 1, 2, 3, 10
    "timesteps_K"  [K]           F32 copy of scheduler.timesteps after set_timesteps(K)

The DDIM loop is

    sched = DDIMScheduler.from_pretrained(dir, subfolder="scheduler"); sched.set_timesteps(K)
    x = noise
    for t in sched.timesteps:
        x = sched.step(unet(x, t).sample, t, x, eta=0.0).prev_sample

and the script checks that it equals DDIMPipeline(...)(generator=..., output_type="pt") after
undoing nothing but the post-processing. All outputs come from the model loaded back from the
written folder (UNet2DModel.from_pretrained(dir, subfolder="unet", torch_dtype=torch.float32)), so
the f16 / bf16 cases use the stored half-precision weights cast to float32.

Cases:
  ddpm_legacy             google/ddpm-cifar10-32 in miniature: 3 ch, one attention head
                          (attention_head_dim null), norm_eps 1e-6, downsample_padding 0,
                          flip_sin_to_cos false, freq_shift 1, layers_per_block 2, F32 weights.
                          Attention tensors renamed to the legacy names (query, key, value,
                          proj_attn; group_norm kept) and unet/config.json cut down to the keys
                          the original ddpm-cifar10-32 config has (the rest take diffusers'
                          defaults). Scheduler: linear 1e-4..0.02, 1000 steps, epsilon,
                          clip_sample (1.0), set_alpha_to_one true, steps_offset 0, trailing.
  multihead_f16           1 ch, attention_head_dim 8 (2 heads at 16 ch, 4 heads at 32 ch),
                          norm_eps 1e-5, downsample_padding 1, flip_sin_to_cos true, freq_shift 0,
                          F16 weights. Scheduler: scaled_linear 0.00085..0.012, v_prediction,
                          no clip, leading spacing, set_alpha_to_one false, steps_offset 1.
  cos_sample_bf16_sharded 3 ch, attention at the first (8x8) level, attention_head_dim 4,
                          conv_out scaled x3 so that clipping at 2.0 engages,
                          BF16 weights in 3 shards + index.json. Scheduler: squaredcos_cap_v2,
                          prediction_type sample, clip_sample with range 2.0, linspace spacing.
  trailing_eps_3level     3 levels [8, 16, 16], layers_per_block 1, F32 weights. Scheduler:
                          500 train steps, linear, epsilon, trailing, no clip.
"""
import argparse
import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file

import diffusers
from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel

torch.set_num_threads(1)

KS = (1, 2, 3, 10)

# The keys of google/ddpm-cifar10-32's unet config (written by an early diffusers version).
LEGACY_UNET_KEYS = {
    "_class_name", "_diffusers_version", "act_fn", "attention_head_dim", "block_out_channels",
    "center_input_sample", "down_block_types", "downsample_padding", "flip_sin_to_cos",
    "freq_shift", "in_channels", "layers_per_block", "mid_block_scale_factor", "norm_eps",
    "norm_num_groups", "out_channels", "sample_size", "time_embedding_type", "up_block_types",
}

CASES = {
    "ddpm_legacy": dict(
        seed=1,
        unet=dict(
            sample_size=8, in_channels=3, out_channels=3, layers_per_block=2,
            block_out_channels=(8, 16), norm_num_groups=4, attention_head_dim=None, norm_eps=1e-6,
            downsample_padding=0, flip_sin_to_cos=False, freq_shift=1,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        ),
        sched=dict(
            num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
            prediction_type="epsilon", clip_sample=True, clip_sample_range=1.0,
            set_alpha_to_one=True, steps_offset=0, timestep_spacing="trailing",
        ),
        dtype=torch.float32, shard=None, legacy=True, t=(999, 500, 3),
    ),
    "multihead_f16": dict(
        seed=2,
        unet=dict(
            sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
            block_out_channels=(16, 32), norm_num_groups=8, attention_head_dim=8, norm_eps=1e-5,
            downsample_padding=1, flip_sin_to_cos=True, freq_shift=0,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        ),
        sched=dict(
            num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
            beta_end=0.012, prediction_type="v_prediction", clip_sample=False,
            set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
        ),
        dtype=torch.float16, shard=None, legacy=False, t=(999, 500, 3),
    ),
    "cos_sample_bf16_sharded": dict(
        seed=3,
        unet=dict(
            sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
            block_out_channels=(8, 16), norm_num_groups=4, attention_head_dim=4, norm_eps=1e-5,
            downsample_padding=1, flip_sin_to_cos=True, freq_shift=0,
            down_block_types=("AttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "AttnUpBlock2D"),
        ),
        sched=dict(
            num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
            prediction_type="sample", clip_sample=True, clip_sample_range=2.0,
            set_alpha_to_one=True, steps_offset=0, timestep_spacing="linspace",
        ),
        dtype=torch.bfloat16, shard="40KB", legacy=False, t=(999, 500, 3),
        out_scale=3.0,  # so that |x0 prediction| exceeds clip_sample_range 2.0 in places
    ),
    "trailing_eps_3level": dict(
        seed=4,
        unet=dict(
            sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
            block_out_channels=(8, 16, 16), norm_num_groups=4, attention_head_dim=8,
            norm_eps=1e-5, downsample_padding=1, flip_sin_to_cos=True, freq_shift=0,
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        ),
        sched=dict(
            num_train_timesteps=500, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
            prediction_type="epsilon", clip_sample=False, set_alpha_to_one=True, steps_offset=0,
            timestep_spacing="trailing",
        ),
        dtype=torch.float32, shard=None, legacy=False, t=(499, 250, 3),
    ),
}

LEGACY_ATTN = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def legacy_rename(path, model):
    """Rewrite the attention tensor names of `path` (a .safetensors file) to the legacy ones."""
    attn_paths = [n for n, m in model.named_modules() if getattr(m, "_from_deprecated_attn_block", False)]
    sd = load_file(path)
    out = {}
    renamed = 0
    for k, v in sd.items():
        nk = k
        for p in attn_paths:
            for new, old in LEGACY_ATTN.items():
                for suffix in ("weight", "bias"):
                    if k == f"{p}.{new}.{suffix}":
                        nk = f"{p}.{old}.{suffix}"
        renamed += nk != k
        out[nk] = v
    assert renamed == 8 * len(attn_paths), (renamed, attn_paths)
    save_file(out, path, metadata={"format": "pt"})


def ddim(unet, sched_dir, noise, k):
    sched = DDIMScheduler.from_pretrained(sched_dir, subfolder="scheduler")
    sched.set_timesteps(k)
    x = noise
    for t in sched.timesteps:
        out = unet(x, t).sample
        x = sched.step(out, t, x, eta=0.0).prev_sample
    return x, sched.timesteps.clone()


@torch.no_grad()
def make_case(root, name, spec):
    d = os.path.join(root, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    torch.manual_seed(spec["seed"])
    unet = UNet2DModel(**spec["unet"])
    g = torch.Generator().manual_seed(1000 + spec["seed"])
    for p in unet.parameters():
        p.add_(0.05 * torch.randn(p.shape, generator=g))
    if spec.get("out_scale"):
        unet.conv_out.weight.mul_(spec["out_scale"])
        unet.conv_out.bias.mul_(spec["out_scale"])
    sched = DDIMScheduler(**spec["sched"])
    unet = unet.to(spec["dtype"])
    kw = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
    DDIMPipeline(unet=unet, scheduler=sched).save_pretrained(d, safe_serialization=True, **kw)

    if spec["legacy"]:
        legacy_rename(os.path.join(d, "unet", "diffusion_pytorch_model.safetensors"), unet)
        cfg_path = os.path.join(d, "unet", "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        cfg = {k: v for k, v in cfg.items() if k in LEGACY_UNET_KEYS}
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
    if spec["shard"]:
        shards = [f for f in os.listdir(os.path.join(d, "unet")) if f.endswith(".safetensors")]
        assert 2 <= len(shards) <= 3, shards
        assert os.path.exists(os.path.join(d, "unet", "diffusion_pytorch_model.safetensors.index.json"))

    # Everything below uses the model loaded back from the folder, in float32.
    unet = UNet2DModel.from_pretrained(d, subfolder="unet", torch_dtype=torch.float32).eval()
    assert all(p.dtype == torch.float32 for p in unet.parameters())
    c, s = unet.config.in_channels, unet.config.sample_size
    gx = torch.Generator().manual_seed(2000 + spec["seed"])
    x = torch.randn((3, c, s, s), generator=gx)
    ts = torch.tensor(spec["t"], dtype=torch.int64)
    golden = {
        "x": x,
        "timesteps": ts.to(torch.float32),
        "unet_out": unet(x, ts).sample,
    }
    noise_seed = 3000 + spec["seed"]
    noise = torch.randn((4, c, s, s), generator=torch.Generator().manual_seed(noise_seed))
    golden["noise"] = noise
    for k in KS:
        xk, tk = ddim(unet, d, noise, k)
        golden[f"ddim_{k}"] = xk
        golden[f"timesteps_{k}"] = tk.to(torch.float32)

    # Cross-check the plain loop against the pipeline itself (same noise via the same generator).
    pipe = DDIMPipeline.from_pretrained(d, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    img = pipe(batch_size=4, generator=torch.Generator().manual_seed(noise_seed), eta=0.0,
               num_inference_steps=10, output_type="pt").images
    ref = (golden["ddim_10"] / 2 + 0.5).clamp(0, 1)
    diff = (img - ref).abs().max().item()
    assert diff == 0.0, f"{name}: pipeline differs from the plain loop by {diff}"

    golden = {k: v.detach().to(torch.float32).contiguous() for k, v in golden.items()}
    meta = {"case": name, "diffusers": diffusers.__version__, "torch": torch.__version__,
            "timesteps_dtype": "f32 holding integers; fed to the unet as int64"}
    save_file(golden, os.path.join(d, "golden.safetensors"), metadata=meta)
    n_params = sum(p.numel() for p in unet.parameters())
    print(f"{name}: {n_params} params, |unet_out| max {golden['unet_out'].abs().max():.3f}, "
          + ", ".join(f"t{k}={golden[f'timesteps_{k}'].long().tolist()}" for k in KS))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/diffusers")
    ap.add_argument("--case", action="append", help="only these cases (default: all)")
    args = ap.parse_args()
    print(f"diffusers {diffusers.__version__}, torch {torch.__version__}")
    os.makedirs(args.out, exist_ok=True)
    for name, spec in CASES.items():
        if args.case and name not in args.case:
            continue
        make_case(args.out, name, spec)


if __name__ == "__main__":
    main()
