#!/usr/bin/env bash
# Why does BTD beat TRACT on ring8? Test the capacity hypothesis: shrink the student MLP and
# compare TRACT 1024,32,1 and BTD 1024->1 again (same fit, same 500k budget, seeds 0-2).
# Prints one line per (width, seed, method): RMSE to the exact 1024-step teacher.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/tract-studio}
OUT=${OUT:-runs/capacity}
WIDTHS=${WIDTHS:-16 32 128}
mkdir -p "$OUT"
"$BIN" sample --model exact:toy:ring8 --steps 1024 --n 4000 --seed 1000 --out "$OUT/ref.safetensors" --device cpu >/dev/null
for w in $WIDTHS; do
  for seed in 0 1 2; do
    d="$OUT/w$w-s$seed"
    rm -rf "$d-tract" "$d-btd"
    "$BIN" distill --data toy:ring8 --method tract --schedule 1024,32,1 --hidden "$w" --seed "$seed" \
      --train-samples 500000 --out "$d-tract" --device cpu >/dev/null 2>&1
    "$BIN" distill --data toy:ring8 --method btd --schedule 1024,1 --seed "$seed" \
      --init "$d-tract/phase0-fit.safetensors" --train-samples 500000 --out "$d-btd" --device cpu >/dev/null 2>&1
    for m in tract btd; do
      "$BIN" sample --model "$d-$m/student.safetensors" --steps 1 --n 4000 --seed 1000 --out "$d-$m.safetensors" --device cpu >/dev/null
      r=$("$BIN" eval --samples "$d-$m.safetensors" --data toy:ring8 --reference "$OUT/ref.safetensors" |
          python3 -c "import json,sys; print(round(json.load(sys.stdin)['rmse_to_reference'], 4))")
      echo "width $w seed $seed $m rmse $r"
    done
  done
done | tee "$OUT/results.txt"
