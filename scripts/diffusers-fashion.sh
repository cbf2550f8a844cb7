#!/usr/bin/env bash
# End to end with a teacher nobody trained with this tool: a diffusers UNet2DModel trained by
# diffusers' own recipe (benches/peer/train_diffusers_teacher.py, PyTorch on the CPU), then
# distilled here with TRACT to 1 step, exported back to diffusers, checked in diffusers, and
# scored (docs/diffusers.md, "End to end"). Resumable: every stage skips what is done, and a
# distillation interrupted anywhere continues with the same command.
#
#   TEACHER=/path/to/pipeline bash scripts/diffusers-fashion.sh     (default: the shipped one)
#   N=2000 BUDGET=48000 STAGES="distill export eval" bash scripts/diffusers-fashion.sh
#   STUDENTS="tract-v-refit btd-v-refit" bash scripts/diffusers-fashion.sh   (some students only)
#   SEED=1 OUT=runs/diffusers-fashion-seed1 STUDENTS="..." bash scripts/diffusers-fashion.sh
#     (another seed of the distillations: their noise, times and data order)
#
# Colour: DATA=emoji trains the teacher itself first (the same recipe, 3 channels, on the
# training emoji as tract-studio loads them; STEPS optimizer steps of 64, resumable), then
# goes on as above; it needs torch and diffusers for the teacher stage:
#   DATA=emoji OUT=runs/emoji-diffusers STEPS=20000 bash scripts/diffusers-fashion.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/tract-studio}
[ -x "$BIN" ] || BIN=${CARGO_TARGET_DIR:-target}/release/tract-studio
DATA=${DATA:-fashion-mnist}
OUT=${OUT:-runs/diffusers-fashion}
BUDGET=${BUDGET:-48000}   # distillation samples per student (beyond a re-fit)
N=${N:-2000}              # samples for FID
NREF=${NREF:-256}         # images for PSNR to the teacher's many-step samples
REFSTEPS=${REFSTEPS:-50}  # the teacher's many-step reference
STAGES=${STAGES:-"teacher distill export eval"}
SEED=${SEED:-0}           # the distillations' seed (the samples scored are always from seed 0)
mkdir -p "$OUT"
TEACHER=${TEACHER:-$OUT/teacher-pipeline}
has() { [[ " $STAGES " == *" $1 "* ]]; }

if has teacher && [ "$DATA" != fashion-mnist ]; then
  # train it: diffusers' recipe in PyTorch on the data as tract-studio loads it
  TEACHER=$OUT/teacher/pipeline
  if [ ! -f "$OUT/teacher/done" ]; then
    [ -f "$OUT/train-images.safetensors" ] ||
      cargo run --release --locked --example dump_data -- "$DATA" train "$OUT/train-images.safetensors"
    resume=(); [ -f "$OUT/teacher/state.pt" ] && resume=(--resume)
    python3 benches/peer/train_diffusers_teacher.py --images "$OUT/train-images.safetensors" \
      --out "$OUT/teacher" --steps "${STEPS:-20000}" --save-min 10 --log-every 200 "${resume[@]}"
    touch "$OUT/teacher/done"
  fi
elif has teacher && [ ! -f "$TEACHER/model_index.json" ]; then
  # the shipped teacher (f16) as a diffusers pipeline folder
  "$BIN" export --model asset:fashion-mnist-diffusers-teacher.safetensors --out "$TEACHER"
fi
[ "$DATA" != fashion-mnist ] && [ -f "$OUT/teacher/pipeline/model_index.json" ] && TEACHER=$OUT/teacher/pipeline

# students, each "method prediction fit-samples schedule steps budget-share":
#  - the teacher's own parametrisation (epsilon) and the x0 / v students, TRACT 1000,40,1;
#    a re-parametrised student is first re-fitted to the teacher for FIT samples
#  - BTD 1000,8,1 (one TRACT phase 1000 -> 8, then BTD 8 -> 4 -> 2 -> 1), v, re-fitted
#  - the 2-step students (TRACT 1000,50,2 epsilon and v, BTD 1000,8,2 v) at 3/4 the budget
FIT=${FIT:-8000}
declare -A STUDENT=(
  [tract-eps]="tract epsilon 0 1000,40,1 1 4"
  [tract-x0]="tract sample 0 1000,40,1 1 4"
  [tract-x0-refit]="tract sample $FIT 1000,40,1 1 4"
  [tract-v-refit]="tract v_prediction $FIT 1000,40,1 1 4"
  [btd-v-refit]="btd v_prediction $FIT 1000,8,1 1 4"
  [tract-eps-2]="tract epsilon 0 1000,50,2 2 3"
  [tract-v-refit-2]="tract v_prediction $FIT 1000,50,2 2 3"
  [btd-v-refit-2]="btd v_prediction $FIT 1000,8,2 2 3"
)
STUDENTS=${STUDENTS:-"${!STUDENT[*]}"}
declare -A PRED SCHED STEPS SAMPLES METHOD FITS
for s in $STUDENTS; do
  read -r m p f sc k share <<< "${STUDENT[$s]}"
  METHOD[$s]=$m PRED[$s]=$p FITS[$s]=$f SCHED[$s]=$sc STEPS[$s]=$k
  SAMPLES[$s]=$((BUDGET * share / 4))
done
if has distill; then
  for s in "${!PRED[@]}"; do
    [ -f "$OUT/$s/student.safetensors" ] && continue
    if [ -f "$OUT/$s/state.safetensors" ]; then
      "$BIN" distill --out "$OUT/$s" --resume --device cpu
    else
      "$BIN" distill --method "${METHOD[$s]}" --data "$DATA" --teacher "diffusers:$TEACHER" \
        --schedule "${SCHED[$s]}" --student-prediction "${PRED[$s]}" --fit-samples "${FITS[$s]}" \
        --train-samples "${SAMPLES[$s]}" --batch 32 --seed "$SEED" --out "$OUT/$s" --device cpu
    fi
  done
fi

if has export; then
  for s in "${!PRED[@]}"; do
    "$BIN" export --model "$OUT/$s/student.safetensors" --out "$OUT/$s/diffusers"
  done
fi

if has eval; then
  ev() { "$BIN" eval --samples "$1" --data "$DATA" ${2:+--reference "$2"}; }
  S="$BIN sample --device cpu --seed 0"
  # sample once: a samples file already there is kept (delete it after changing N or NREF)
  once() { local out=$1; shift; [ -f "$out" ] || $S "$@" --out "$out"; }
  [ -f "$OUT/ref.safetensors" ] || $S --model "diffusers:$TEACHER" --steps "$REFSTEPS" --n "$NREF" --out "$OUT/ref.safetensors"
  : > "$OUT/scores.jsonl"
  for k in 1 2 "$REFSTEPS"; do
    n=$N; [ "$k" -gt 2 ] && n=${NFID_MANY:-$N}
    once "$OUT/teacher-$k.safetensors" --model "diffusers:$TEACHER" --steps "$k" --n "$n" --png "$OUT/teacher-$k.png"
    once "$OUT/teacher-$k-ref.safetensors" --model "diffusers:$TEACHER" --steps "$k" --n "$NREF"
    echo "{\"model\": \"teacher\", \"steps\": $k, \"fid\": $(ev "$OUT/teacher-$k.safetensors"), \"vs_ref\": $(ev "$OUT/teacher-$k-ref.safetensors" "$OUT/ref.safetensors")}" >> "$OUT/scores.jsonl"
  done
  for s in "${!PRED[@]}"; do
    k=${STEPS[$s]}
    once "$OUT/$s-$k.safetensors" --model "$OUT/$s/student.safetensors" --n "$N" --png "$OUT/$s-$k.png"
    once "$OUT/$s-$k-ref.safetensors" --model "$OUT/$s/student.safetensors" --n "$NREF"
    echo "{\"model\": \"$s\", \"steps\": $k, \"fid\": $(ev "$OUT/$s-$k.safetensors"), \"vs_ref\": $(ev "$OUT/$s-$k-ref.safetensors" "$OUT/ref.safetensors")}" >> "$OUT/scores.jsonl"
    # the exported folder in diffusers itself, from the same noise (where diffusers is here)
    if python3 -c "import diffusers" 2>/dev/null; then
      python3 benches/peer/check_export.py "$OUT/$s/diffusers" "$OUT/$s-$k-ref.safetensors" --steps "$k" --tol 1e-3
    fi
  done
  cat "$OUT/scores.jsonl"
fi
