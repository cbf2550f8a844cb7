#!/usr/bin/env bash
# The GPU check: what tract-studio does on a machine with an NVIDIA GPU, in one time-boxed run
# that writes one JSON file. Two halves:
#
#   bash scripts/device-check.sh --prepare
#       here, with Rust: builds the release binary, strips and gzips it into device/ (ignored
#       by git) with this machine's Vulkan loader (libvulkan.so.1) and the libraries NVIDIA's
#       Vulkan driver links against (glvnd, X11), and 10,000 Fashion-MNIST training images, so
#       the folder can be carried to a machine without a Rust toolchain (about 33 MB in all).
#
#   bash scripts/device-check.sh [RESULT.json]
#       there, from the repository root (no Rust needed; python3 with PyTorch for the peer):
#       prints the adapter wgpu picked, `bench --unet` on wgpu against benches/peer/unet.py on
#       CUDA (the same network), `bench --kernels`, and the samples/s of a short `teacher` and a
#       short `distill` run on wgpu. Each step has its own time limit and the whole stays within
#       DEVICE_CHECK_BUDGET seconds (default 450; a step never starts past it). The JSON is
#       rewritten after every step, so a step that fails or is cut off leaves the others'
#       results. RESULT.json defaults to $OUT/device-check.json when OUT is set, else
#       device/device-check.json; the steps' logs go beside it as device-check.log.
#
# DEVICE_CHECK_QUICK=1 shrinks every step (the tiny UNet, 32 training samples) for a machine with
# no GPU, where wgpu runs on lavapipe and PyTorch on the CPU: that is how the script is tested
# without a GPU. DEVICE_CHECK_BIN=PATH uses that binary instead of device/tract-studio.gz.
# How to run it and what it prints: docs/perf.md, "Running the GPU check".
set -uo pipefail

cd "$(dirname "$0")/.."
DIR=device

prepare() {
    set -e
    command -v cargo >/dev/null || { echo "--prepare needs cargo (Rust)"; exit 1; }
    local target="${CARGO_TARGET_DIR:-target}"
    echo "building the release binary (target folder $target)"
    cargo build --release --locked --bin tract-studio
    mkdir -p "$DIR/lib" "$DIR/fashion-mnist"
    rm -f "$DIR/tract-studio" "$DIR/tract-studio.gz"
    strip -o "$DIR/tract-studio" "$target/release/tract-studio"
    local full stripped
    full=$(stat -c %s "$target/release/tract-studio")
    stripped=$(stat -c %s "$DIR/tract-studio")
    gzip -9 -f "$DIR/tract-studio"
    # the Vulkan loader (wgpu opens libvulkan.so.1 at run time), and what NVIDIA's Vulkan
    # driver (libGLX_nvidia.so.0) links against that a CUDA image may lack: glvnd's dispatch
    # library and libX11's; the check uses only those the machine has no copy of
    rm -f "$DIR"/lib/*
    for lib in libvulkan.so.1 libGLdispatch.so.0 libX11.so.6 libXext.so.6 libxcb.so.1 \
        libXau.so.6 libXdmcp.so.6 libbsd.so.0 libmd.so.0; do
        local path
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ { print $NF; exit }')
        if [ -z "$path" ]; then
            echo "$lib not found here (apt-get install libvulkan1 libglvnd0 libx11-6 libxext6)"
            exit 1
        fi
        cp -L "$path" "$DIR/lib/$lib"
    done
    # the first 10,000 training images of Fashion-MNIST (idx format: the header's count
    # rewritten), enough for a throughput run and small enough to carry
    local fm=/usr/share/datasets/fashion-mnist n=10000
    if [ ! -f "$fm/train-images-idx3-ubyte.gz" ]; then
        echo "$fm missing (apt-get install dataset-fashion-mnist)"
        exit 1
    fi
    # (head closes the pipe early: zcat's SIGPIPE is expected, the size is checked instead)
    { printf '\x00\x00\x08\x03\x00\x00\x27\x10\x00\x00\x00\x1c\x00\x00\x00\x1c'
      zcat "$fm/train-images-idx3-ubyte.gz" | tail -c +17 | head -c $((n * 784)) || true; } \
        | gzip -9 >"$DIR/fashion-mnist/train-images-idx3-ubyte.gz"
    { printf '\x00\x00\x08\x01\x00\x00\x27\x10'
      zcat "$fm/train-labels-idx1-ubyte.gz" | tail -c +9 | head -c $n || true; } \
        | gzip -9 >"$DIR/fashion-mnist/train-labels-idx1-ubyte.gz"
    [ "$(zcat "$DIR/fashion-mnist/train-images-idx3-ubyte.gz" | wc -c)" = $((16 + n * 784)) ] \
        && [ "$(zcat "$DIR/fashion-mnist/train-labels-idx1-ubyte.gz" | wc -c)" = $((8 + n)) ] \
        || { echo "could not cut $n images out of $fm"; exit 1; }
    {
        echo "commit=$(git rev-parse HEAD)$(git diff --quiet HEAD || echo '+changes')"
        echo "prepared=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "binary_bytes=$full"
        echo "stripped_bytes=$stripped"
        echo "gzipped_bytes=$(stat -c %s "$DIR/tract-studio.gz")"
        echo "vulkan_loader=$(ldconfig -p | awk '$1 == "libvulkan.so.1" && /x86-64/ { print $NF; exit }')"
    } >"$DIR/prepared.txt"
    cat "$DIR/prepared.txt"
    echo "carried: $(du -sb "$DIR" | cut -f1) bytes in $DIR/ (carry it: [\"$DIR\"])"
}

if [ "${1:-}" = "--prepare" ]; then
    prepare
    exit
fi

# ---------------------------------------------------------------------------- the check
START=$EPOCHSECONDS
QUICK=${DEVICE_CHECK_QUICK:-0}
BUDGET=${DEVICE_CHECK_BUDGET:-450}
if [ -n "${1:-}" ]; then
    RESULT=$1
elif [ -n "${OUT:-}" ]; then
    RESULT=$OUT/device-check.json
else
    RESULT=$DIR/device-check.json
fi
mkdir -p "$(dirname "$RESULT")"
LOG="$(dirname "$RESULT")/device-check.log"
: >"$LOG"
WORK=$(mktemp -d /tmp/device-check.XXXXXX)
R=$WORK/results
mkdir -p "$R"
echo "quick=$QUICK" >"$R/meta.txt"
echo "budget_s=$BUDGET" >>"$R/meta.txt"
[ -f "$DIR/prepared.txt" ] && cat "$DIR/prepared.txt" >>"$R/meta.txt"

say() { echo "== $*" | tee -a "$LOG"; }
note() { echo "$1=$2" >>"$R/meta.txt"; echo "   $1: $2" | tee -a "$LOG"; }

# Assemble $RESULT from what the steps left in $R (run after every step).
assemble() {
    python3 - "$R" "$RESULT" <<'PY' || echo "   (could not write $2: python3 failed)"
import json, os, re, sys

r, out = sys.argv[1], sys.argv[2]

def read(name):
    try:
        with open(os.path.join(r, name)) as f:
            return f.read()
    except OSError:
        return None

def load(name):
    t = read(name)
    if not t:
        return None
    try:
        return json.loads(t)
    except ValueError:
        return None

res = {"check": "scripts/device-check.sh"}
meta = {}
for line in (read("meta.txt") or "").splitlines():
    k, _, v = line.partition("=")
    meta[k] = v
res["meta"] = meta
steps = {}
for name in (read("order.txt") or "").split():
    if read(name + ".rc") is not None:
        rc = int(read(name + ".rc").split()[0])
        secs = read(name + ".secs")
        cmd = (read(name + ".cmd") or "").strip()
        steps[name] = {
            "rc": rc,
            "timed_out": rc in (124, 137),
            "skipped": cmd == "skipped",
            "seconds": float(secs) if secs else None,
            "command": cmd,
            "log_tail": [l.split(" ", 1)[-1] for l in (read(name + ".log") or "").splitlines()[-30:]],
        }
res["steps"] = steps
res["torch"] = load("torch.json")
for key in ("distill_bench", "unet", "kernels"):
    res[key] = load(key + ".json")
peer = [json.loads(l) for l in (read("peer.log") or "").splitlines() if l.startswith("{")]
if peer:
    res["peer_standalone"] = peer

# the adapter: from the first bench that reached wgpu, else from the logs
adapter = None
for key in ("distill_bench", "unet", "kernels"):
    v = res.get(key) or {}
    adapter = adapter or v.get("wgpu_adapter") or v.get("device")
for name in ("teacher", "distill"):
    for line in (read(name + ".log") or "").splitlines():
        m = re.search(r"device: (.*)", line)
        if m and not adapter:
            adapter = m.group(1)
res["adapter"] = adapter

# samples/s of the training runs from their timestamped progress lines: the whole run, and
# from the first progress line on (past the warm-up: shader compilation, autotuning)
pat = re.compile(r"^(\d+\.\d+) .*: (\d+)% \((\d+)/(\d+) samples\), (\d+) samples/s")
for name in ("teacher", "distill"):
    text = read(name + ".log")
    if text is None:
        continue
    pts = []
    for line in text.splitlines():
        m = pat.match(line)
        if m:
            pts.append((float(m.group(1)), int(m.group(3)), int(m.group(4))))
    t0 = read(name + ".t0")
    v = {"progress_lines": len(pts), "finished": steps.get(name, {}).get("rc") == 0}
    if pts:
        v["samples_done"] = pts[-1][1]
        v["samples_total"] = pts[-1][2]
        if t0 and pts[-1][0] > float(t0):
            v["samples_per_s_whole"] = pts[-1][1] / (pts[-1][0] - float(t0))
        if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
            v["samples_per_s"] = (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
    res[name] = v

tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump(res, f, indent=1, allow_nan=False)
    f.write("\n")
os.replace(tmp, out)
PY
}

# step NAME LIMIT COMMAND...: run it time-boxed (never past the budget), each output line
# timestamped into $R/NAME.log, its exit status and seconds beside it; then rewrite $RESULT.
step() {
    local name=$1 limit=$2
    shift 2
    echo "$name" >>"$R/order.txt"
    local left=$((BUDGET - (EPOCHSECONDS - START)))
    if [ "$left" -lt 10 ]; then
        say "$name: skipped, the ${BUDGET}s budget is spent"
        echo "skipped" >"$R/$name.cmd"
        echo 125 >"$R/$name.rc"
        assemble
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    say "$name (at most ${limit}s): $*"
    echo "$*" >"$R/$name.cmd"
    echo "$EPOCHREALTIME" >"$R/$name.t0"
    local t0=$EPOCHREALTIME
    timeout -k 10 "$limit" "$@" 2>&1 | while IFS= read -r line; do
        printf '%s %s\n' "$EPOCHREALTIME" "$line" >>"$R/$name.log"
        printf '   %s\n' "$line"
    done | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    echo "$rc" >"$R/$name.rc"
    python3 -c "print(round($EPOCHREALTIME - $t0, 2))" >"$R/$name.secs" 2>/dev/null || true
    [ "$rc" = 0 ] || say "$name: exit status $rc$([ "$rc" = 124 ] && echo ' (time limit)')"
    assemble
}

say "GPU check $(date -u +%Y-%m-%dT%H:%M:%SZ), quick=$QUICK, budget ${BUDGET}s, result $RESULT"

# the binary: the prepared one, or DEVICE_CHECK_BIN
if [ -n "${DEVICE_CHECK_BIN:-}" ]; then
    BIN=$DEVICE_CHECK_BIN
elif [ -f "$DIR/tract-studio.gz" ]; then
    BIN=$WORK/tract-studio
    gzip -dc "$DIR/tract-studio.gz" >"$BIN" && chmod +x "$BIN"
else
    say "no $DIR/tract-studio.gz: run 'bash scripts/device-check.sh --prepare' first (where Rust is)"
    exit 1
fi
note binary "$BIN"

# the libraries: the machine's own where it has them, the carried ones (through
# LD_LIBRARY_PATH) where it has not; NVIDIA's driver libraries where the container runtime
# mounts them
mkdir -p "$WORK/lib"
used=()
for f in "$DIR"/lib/*; do
    [ -f "$f" ] || continue
    lib=$(basename "$f")
    if ! ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ { found = 1 } END { exit !found }'; then
        ln -s "$PWD/$f" "$WORK/lib/$lib"
        used+=("$lib")
    fi
done
export LD_LIBRARY_PATH="$WORK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
note carried_libs_used "${used[*]:-none (the machine has them all)}"
if ldconfig -p | grep -q 'libvulkan.so.1 .*x86-64'; then
    note vulkan_loader "the machine's ($(ldconfig -p | awk '$1 == "libvulkan.so.1" && /x86-64/ { print $NF; exit }'))"
elif [ -e "$WORK/lib/libvulkan.so.1" ]; then
    note vulkan_loader "carried ($DIR/lib/libvulkan.so.1)"
else
    note vulkan_loader "none: wgpu will find no adapter (run --prepare where libvulkan1 is installed)"
fi
# wgpu's window-system probing complains without one
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$WORK}
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
done

# the NVIDIA Vulkan driver's manifest (ICD), where the driver put one
ICD=
for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
    /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json \
    /etc/vulkan/icd.d/nvidia_icd.x86_64.json; do
    if [ -f "$f" ]; then ICD=$f; break; fi
done
if [ -n "$ICD" ]; then
    export VK_ICD_FILENAMES=$ICD VK_DRIVER_FILES=$ICD
    note vulkan_icd "$ICD ($(grep -o '"library_path"[^,}]*' "$ICD" | head -1))"
else
    note vulkan_icd "no NVIDIA Vulkan driver manifest found (looked in /usr/share/vulkan/icd.d, /etc/vulkan/icd.d, /usr/local/nvidia/share/vulkan/icd.d): wgpu takes whatever adapter the loader finds, if any; the CUDA PyTorch half runs regardless"
fi
note ld_library_path "${LD_LIBRARY_PATH:-}"

# the machine
note uname "$(uname -srm)"
note cpus "$(nproc)"
if command -v nvidia-smi >/dev/null; then
    note nvidia_smi "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
else
    note nvidia_smi "not found (no NVIDIA driver here)"
fi
PEER_DEVICE=cpu
if python3 - >"$R/torch.json" 2>/dev/null <<'PY'
import json, torch
c = torch.cuda.is_available()
print(json.dumps({"torch": torch.__version__, "cuda": c, "cuda_version": torch.version.cuda,
                  "device": torch.cuda.get_device_name(0) if c else "cpu"}))
PY
then
    grep -q '"cuda": true' "$R/torch.json" && PEER_DEVICE=cuda
    echo "   torch: $(cat "$R/torch.json")" | tee -a "$LOG"
else
    rm -f "$R/torch.json"
    note torch "python3 with torch not importable: no PyTorch peer"
fi
note peer_device "$PEER_DEVICE"
assemble

if [ "$QUICK" = 1 ]; then
    # a few steps of everything; the UNet benches at one point (sampling, batch 64)
    SIZE=tiny REPS=1 IMG_BATCH=8 TEACHER_N=32 DISTILL_N=32 BATCH=64 KSTEPS=10
    export TRACT_BENCH_ONLY=sample64
else
    SIZE=small REPS=5 IMG_BATCH=64 TEACHER_N=64000 DISTILL_N=64000 BATCH=512 KSTEPS=200
fi
DATA=fashion-mnist:$DIR/fashion-mnist
[ -f "$DIR/fashion-mnist/train-images-idx3-ubyte.gz" ] || DATA=fashion-mnist

# 1. the adapter wgpu picks, and the 2-D distillation step (ring8) on the CPU and on wgpu
step distill_bench 60 "$BIN" bench --batch "$BATCH" --steps "$KSTEPS" --json "$R/distill_bench.json"
# no adapter, a software one beside an NVIDIA GPU, or OpenGL instead of Vulkan: what the
# Vulkan loader says
if ! grep -q '"wgpu_adapter": "' "$R/distill_bench.json" 2>/dev/null \
    || grep -q '(Gl)' "$R/distill_bench.json" \
    || { command -v nvidia-smi >/dev/null && grep -q 'software adapter' "$R/distill_bench.json"; }; then
    VK_LOADER_DEBUG=error,warn,driver step vulkan_debug 30 "$BIN" bench --batch 8 --steps 1
fi
# 2. the UNet on wgpu against the PyTorch peer (the same network) on CUDA
step unet 170 "$BIN" bench --unet --device wgpu --size "$SIZE" --reps "$REPS" \
    --peer-device "$PEER_DEVICE" --json "$R/unet.json"
# the peer alone when bench did not get to it (no wgpu adapter, or a failure)
if [ -f "$R/torch.json" ] && ! grep -q '"images_per_s"' <(python3 -c "import json,sys; print(json.dumps([v.get('peer') for v in json.load(open(sys.argv[1]))['sizes'].values()]))" "$R/unet.json" 2>/dev/null); then
    step peer 60 python3 benches/peer/unet.py --size "$SIZE" --device "$PEER_DEVICE" \
        --threads "$(nproc)" --reps "$REPS" --json
    grep -o '{.*}' "$R/peer.log" >"$R/peer.log.tmp" && mv "$R/peer.log.tmp" "$R/peer.log"
    assemble
fi
unset TRACT_BENCH_ONLY
# 3. the WGSL kernels against Burn's ops
step kernels 75 "$BIN" bench --kernels --device wgpu --batch "$BATCH" --steps "$KSTEPS" --json "$R/kernels.json"
# 4. a short teacher (a UNet on Fashion-MNIST) and 5. a short distillation of the shipped
# teacher, both on wgpu; samples/s from their progress lines
step teacher 90 "$BIN" teacher --data "$DATA" --size "$SIZE" --batch "$IMG_BATCH" \
    --train-samples "$TEACHER_N" --ckpt-every 1000000 --device wgpu --out "$WORK/teacher"
step distill 90 "$BIN" distill --data "$DATA" --teacher asset:fashion-mnist-teacher.safetensors \
    --batch "$IMG_BATCH" --train-samples "$DISTILL_N" --ckpt-every 1000000 --device wgpu \
    --out "$WORK/distill"

echo "total_s=$((EPOCHSECONDS - START))" >>"$R/meta.txt"
assemble
say "done in $((EPOCHSECONDS - START))s: $RESULT"
python3 - "$RESULT" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("adapter:", r.get("adapter"))
print("GPU:", r["meta"].get("nvidia_smi"), "| torch:", r.get("torch"))
for k, s in r["steps"].items():
    print(f"  {k:<14} " + ("skipped (budget spent)" if s["skipped"] else f"rc {s['rc']:>3}  {s['seconds']:>7.1f} s"))
d = r.get("distill_bench") or {}
if d.get("wgpu"):
    print(f"ring8 distillation step: wgpu {d['wgpu']['samples_per_s']:.0f} samples/s, CPU {d['cpu']['samples_per_s']:.0f}")
for name, v in ((r.get("unet") or {}).get("sizes") or {}).items():
    peer = v.get("peer") or r.get("peer_standalone") or []
    for o in v.get("wgpu") or []:
        p = next((p for p in peer if p.get("what") == o["what"] and p.get("batch") == o["batch"]), None)
        ratio = f"{p['ms'] / o['ms']:.2f}x" if p else "-"
        pt = f"{p['ms']:.1f} ms" if p else "-"
        print(f"UNet {name} {o['what']:<6} batch {o['batch']:>3}: wgpu {o['ms']:.1f} ms, PyTorch {pt}, ours/PyTorch {ratio}")
alone = r.get("peer_standalone") or []
dev = next((p["device"] for p in alone if "device" in p), "?")
for p in alone:
    if "what" in p:
        print(f"PyTorch peer alone on {dev}: {p['what']} batch {p['batch']}: {p['ms']:.1f} ms")
for k in (r.get("kernels") or {}).get("kernels") or []:
    print(f"kernel {k['name']:<36} {k['kernel_ms']:.3f} ms vs Burn ops {k['burn_ms']:.3f} ms ({k['ratio']:.2f})")
for name in ("teacher", "distill"):
    v = r.get(name) or {}
    if "samples_per_s" in v:
        print(f"{name}: {v['samples_per_s']:.1f} samples/s past the first progress line, {v.get('samples_per_s_whole', float('nan')):.1f} over the whole run ({v['samples_done']}/{v['samples_total']} samples, finished: {v['finished']})")
    else:
        print(f"{name}: no rate ({v.get('progress_lines', 0)} progress lines)")
PY
rm -rf "$WORK"
