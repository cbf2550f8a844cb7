#!/usr/bin/env bash
# Issue #18, part 6: TRACT vs both BTDs on Fashion-MNIST from one learned UNet teacher, several
# seeds, FID from 5,000 samples. Every stage whose output exists is skipped and every student
# resumes from its last checkpoint, so the script can be stopped and run again (also in a later
# session: the state lives under OUT).
#
#   TEACHER=path/to/teacher.safetensors BUDGET=256000 bash scripts/fashion-study.sh
#   DATA=emoji TEACHER=... OUT=runs/emoji-study bash scripts/fashion-study.sh   (colour: the
#   same study on the emoji data, scored with the shipped emoji classifier)
#
# Students (each from the teacher, same budget): tract-1 (TRACT 1024,32,1), tract-2 (TRACT
# 1024,32,2), btd-1 (BTD 1024 -> 1 with TRACT's recipe), btd-sh-1 (BTD with Salimans & Ho's
# recipe). Two run side by side, one thread each. Metrics: classifier-feature FID (shipped
# classifier) from N_FID samples against the test set, and PSNR to the teacher's 1024-step DDIM
# from the same noise (N_REF images). Writes OUT/results.jsonl and OUT/table.md (mean and 95%
# interval over seeds, paired differences per seed) and OUT/gallery.png (the teacher and each
# method's SEED-0 student from the same noise). EVAL_ONLY=1 skips training and scores the students
# of SEEDS that are there (e.g. while other seeds still train).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/tract-studio}
TEACHER=${TEACHER:?TEACHER=path to the teacher model file}
DATA=${DATA:-fashion-mnist}
OUT=${OUT:-runs/fashion-study}
BUDGET=${BUDGET:-256000}
SEEDS=${SEEDS:-0 1 2}
METHODS=${METHODS:-tract-1 tract-2 btd-1 btd-sh-1}
N_FID=${N_FID:-5000}
N_REF=${N_REF:-256}
DEVICE=${DEVICE:-cpu}
PAR=${PAR:-2}
mkdir -p "$OUT/samples"
export BIN TEACHER OUT BUDGET DEVICE DATA

student() { # NAME SEED
  local dir="$OUT/$1-s$2" args
  [ -f "$dir/student.safetensors" ] && return 0
  case $1 in
    tract-1) args=(--method tract --schedule 1024,32,1) ;;
    tract-2) args=(--method tract --schedule 1024,32,2) ;;
    btd-1) args=(--method btd --schedule 1024,1) ;;
    btd-sh-1) args=(--method btd --schedule 1024,1 --salimans-ho) ;;
    *) echo "unknown student $1" >&2; return 1 ;;
  esac
  if [ -f "$dir/state.safetensors" ]; then
    RAYON_NUM_THREADS=1 "$BIN" distill --data "$DATA" --teacher "$TEACHER" --out "$dir" \
      --device "$DEVICE" --resume >> "$OUT/$1-s$2.log" 2>&1
  else
    RAYON_NUM_THREADS=1 "$BIN" distill --data "$DATA" --teacher "$TEACHER" "${args[@]}" \
      --train-samples "$BUDGET" --seed "$2" --ckpt-every 100 --out "$dir" --device "$DEVICE" \
      > "$OUT/$1-s$2.log" 2>&1
  fi
}
export -f student
if [ "${EVAL_ONLY:-0}" != 1 ]; then
  for s in $SEEDS; do for m in $METHODS; do echo "$m $s"; done; done |
    xargs -P "$PAR" -L 1 bash -c 'student "$0" "$1" || { echo "student $0 seed $1 failed: see $OUT/$0-s$1.log" >&2; exit 255; }'
fi

sample() { # MODEL STEPS N SEED OUT
  [ -f "$5" ] || "$BIN" sample --model "$1" --steps "$2" --n "$3" --seed "$4" --out "$5" --device "$DEVICE" >/dev/null
}
S="$OUT/samples"
sample "$TEACHER" 1024 "$N_REF" 1 "$S/ref-teacher-1024.safetensors"
rows=("teacher:$TEACHER:1:-" "teacher:$TEACHER:2:-" "teacher:$TEACHER:64:-")
for s in $SEEDS; do
  for m in $METHODS; do
    k=${m##*-}
    [ -f "$OUT/$m-s$s/student.safetensors" ] || { echo "skipping $m seed $s: no student yet" >&2; continue; }
    rows+=("$m:$OUT/$m-s$s/student.safetensors:$k:$s")
  done
done
: > "$OUT/results.jsonl"
for r in "${rows[@]}"; do
  IFS=: read -r name model steps seed <<< "$r"
  tag="$name-$steps-$seed"
  sample "$model" "$steps" "$N_FID" 0 "$S/$tag-fid.safetensors"
  sample "$model" "$steps" "$N_REF" 1 "$S/$tag-ref.safetensors"
  fid=$("$BIN" eval --samples "$S/$tag-fid.safetensors" --data "$DATA")
  psnr=$("$BIN" eval --samples "$S/$tag-ref.safetensors" --data "$DATA" \
           --reference "$S/ref-teacher-1024.safetensors")
  python3 - "$name" "$steps" "$seed" "$fid" "$psnr" >> "$OUT/results.jsonl" <<'PY'
import json, sys
name, steps, seed, fid, psnr = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
print(json.dumps({"model": name, "steps": steps, "seed": None if seed == "-" else int(seed),
                  "fid_classifier": fid["fid_classifier"], "psnr_to_teacher_1024": psnr["psnr_to_reference"]}))
PY
done
python3 - "$OUT" "$BUDGET" "$N_FID" "$N_REF" > "$OUT/table.md" <<'PY'
import json, math, sys
out, budget, nfid, nref = sys.argv[1:5]
rows = [json.loads(l) for l in open(f"{out}/results.jsonl")]
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
def ci(v):
    m = sum(v) / len(v)
    if len(v) < 2:
        return f"{m:.2f}"
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
    return f"{m:.2f} ± {T975.get(len(v) - 1, 2.0) * sd / math.sqrt(len(v)):.2f}"
print(f"| model | steps | seeds | classifier-feature FID ({nfid} samples) | PSNR to teacher-1024, dB ({nref} images) |")
print("|---|---|---|---|---|")
keys = []
for r in rows:
    if (r["model"], r["steps"]) not in keys:
        keys.append((r["model"], r["steps"]))
by = {k: [r for r in rows if (r["model"], r["steps"]) == k] for k in keys}
for (m, k), rs in by.items():
    print(f"| {m} | {k} | {len(rs)} | {ci([r['fid_classifier'] for r in rs])} | {ci([r['psnr_to_teacher_1024'] for r in rs])} |")
print()
print(f"Students: {budget} distillation samples each; ± is the half-width of the 95% t-interval over seeds.")
print()
print("Paired differences (same seed), negative FID / positive PSNR = the first is better:")
print()
print("| A - B | seeds | Δ FID | Δ PSNR (dB) |")
print("|---|---|---|---|")
for a, b in [("tract-1", "btd-1"), ("tract-1", "btd-sh-1")]:
    ra = {r["seed"]: r for r in rows if r["model"] == a}
    rb = {r["seed"]: r for r in rows if r["model"] == b}
    seeds = sorted(set(ra) & set(rb))
    if seeds:
        df = [ra[s]["fid_classifier"] - rb[s]["fid_classifier"] for s in seeds]
        dp = [ra[s]["psnr_to_teacher_1024"] - rb[s]["psnr_to_teacher_1024"] for s in seeds]
        print(f"| {a} - {b} | {len(seeds)} | {ci(df)} | {ci(dp)} |")
PY
cat "$OUT/table.md"
g=$TEACHER
for m in $METHODS; do
  f=$OUT/$m-s${SEEDS%% *}/student.safetensors
  [ -f "$f" ] && g="$g,$f"
done
[ -f "$OUT/gallery.png" ] || "$BIN" gallery --models "$g" --steps 1,2 --seed 100 --cols 10 \
  --out "$OUT/gallery.png" --device "$DEVICE"
