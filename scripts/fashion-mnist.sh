#!/usr/bin/env bash
# The Fashion-MNIST experiment end to end (paper Table 1 shape on images): a UNet teacher,
# TRACT 1024,32,1 and 1024,32,2 students and a BTD 1-step student at the same budget, then
# samples from the same noise, classifier-feature FID, PSNR to the teacher's 1024-step
# samples, a gallery, and a Markdown table. Stages whose outputs exist are skipped (a killed
# run resumes). Needs Debian's dataset-fashion-mnist.
#
#   bash scripts/fashion-mnist.sh            # budgets below; OUT=... BIN=... to change
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/tract-studio}
OUT=${OUT:-runs/fashion-mnist}
TEACHER_SAMPLES=${TEACHER_SAMPLES:-128000}   # 2000 steps at batch 64
DISTILL_SAMPLES=${DISTILL_SAMPLES:-32000}    # per student, all phases
N_FID=${N_FID:-500}                          # samples per model for the FID
N_REF=${N_REF:-64}                           # images for PSNR to the 1024-step teacher
SIZE=${SIZE:-tiny}
DEVICE=${DEVICE:-cpu}
DATA=${DATA:-fashion-mnist}
LR=${LR:-1e-3}
clf=(); [ -n "${CLASSIFIER:-}" ] && clf=(--classifier "$CLASSIFIER")
mkdir -p "$OUT/samples"
T="$OUT/teacher/teacher.safetensors"

if [ ! -f "$T" ]; then
  resume=(); [ -f "$OUT/teacher/state.safetensors" ] && resume=(--resume)
  "$BIN" teacher --data "$DATA" --out "$OUT/teacher" --train-samples "$TEACHER_SAMPLES" \
    --size "$SIZE" --lr "$LR" --ckpt-every 250 --device "$DEVICE" "${resume[@]}"
fi

# the three students in parallel, one thread each
distill() { # name method schedule
  local dir="$OUT/$1"
  [ -f "$dir/student.safetensors" ] && return 0
  local resume=(); [ -f "$dir/state.safetensors" ] && resume=(--resume)
  RAYON_NUM_THREADS=1 "$BIN" distill --data "$DATA" --teacher "$T" --method "$2" \
    --schedule "$3" --train-samples "$DISTILL_SAMPLES" --ckpt-every 50 --out "$dir" \
    --device "$DEVICE" "${resume[@]}" > "$OUT/$1.log" 2>&1
}
distill tract-1 tract 1024,32,1 & p1=$!
distill tract-2 tract 1024,32,2 & p2=$!
distill btd-1 btd 1024,1 & p3=$!
wait $p1 $p2 $p3

sample() { # model steps n seed out
  [ -f "$5" ] || "$BIN" sample --model "$1" --steps "$2" --n "$3" --seed "$4" --out "$5" --device "$DEVICE" >/dev/null
}
S="$OUT/samples"
sample "$T" 1024 "$N_REF" 1 "$S/ref-teacher-1024.safetensors"
rows=("teacher:$T:1" "teacher:$T:2" "teacher:$T:64"
      "tract-1:$OUT/tract-1/student.safetensors:1" "tract-2:$OUT/tract-2/student.safetensors:2"
      "btd-1:$OUT/btd-1/student.safetensors:1")
: > "$OUT/results.jsonl"
for r in "${rows[@]}"; do
  IFS=: read -r name model steps <<< "$r"
  sample "$model" "$steps" "$N_FID" 0 "$S/$name-$steps-fid.safetensors"
  sample "$model" "$steps" "$N_REF" 1 "$S/$name-$steps-ref.safetensors"
  fid=$("$BIN" eval --samples "$S/$name-$steps-fid.safetensors" --data "$DATA" "${clf[@]}")
  psnr=$("$BIN" eval --samples "$S/$name-$steps-ref.safetensors" --data "$DATA" "${clf[@]}" \
           --reference "$S/ref-teacher-1024.safetensors")
  python3 - "$name" "$steps" "$fid" "$psnr" >> "$OUT/results.jsonl" <<'PY'
import json, sys
name, steps, fid, psnr = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
print(json.dumps({"model": name, "steps": steps, "fid_classifier": fid["fid_classifier"],
                  "psnr_to_teacher_1024": psnr["psnr_to_reference"], "note": fid["fid_note"]}))
PY
done
"$BIN" gallery --models "$T,$OUT/tract-1/student.safetensors,$OUT/tract-2/student.safetensors,$OUT/btd-1/student.safetensors" \
  --steps 1,2 --seed 100 --cols 10 --out "$OUT/gallery.png" --device "$DEVICE"
python3 - "$OUT" "$DISTILL_SAMPLES" "$N_FID" "$N_REF" > "$OUT/table.md" <<'PY'
import json, sys
out, budget, nfid, nref = sys.argv[1:5]
rows = [json.loads(l) for l in open(f"{out}/results.jsonl")]
print(f"| model | steps | classifier-feature FID ({nfid} samples, lower is better) | PSNR to teacher 1024-step, dB ({nref} images, same noise) |")
print("|---|---|---|---|")
for r in rows:
    print(f"| {r['model']} | {r['steps']} | {r['fid_classifier']:.2f} | {r['psnr_to_teacher_1024']:.2f} |")
print()
print(f"Students: {budget} distillation samples each. {rows[0]['note']}.")
PY
cat "$OUT/table.md"
