#!/usr/bin/env bash
# TRACT ablations on ring8 at 1M distillation samples from the shipped fit (the README table).
# Run in an empty directory: bash /path/to/scripts/ablation-ring8.sh
set -e
HERE=$(cd "$(dirname "$0")/.." && pwd)
B=${TRACT_BIN:-$HERE/target/release/tract-studio}
FIT=$HERE/assets/ring8-fit.safetensors
common="--data toy:ring8 --init $FIT --train-samples 1000000 --device cpu"
$B distill $common --method tract --schedule 1024,32,1 --out t-base > /dev/null 2>&1
$B distill $common --method tract --schedule 1024,32,1 --mu-s 0 --out t-mus0 > /dev/null 2>&1
$B distill $common --method tract --schedule 1024,32,1 --phase-split 1,1 --out t-split11 > /dev/null 2>&1
$B distill $common --method tract --schedule 1024,1 --out t-1phase > /dev/null 2>&1
$B distill $common --method tract --schedule 1024,512,256,128,64,32,16,8,4,2,1 --out t-10phase > /dev/null 2>&1
$B distill $common --method btd --schedule 1024,1 --out btd > /dev/null 2>&1
$B sample --model exact:toy:ring8 --steps 1024 --n 10000 --out ref.safetensors --device cpu > /dev/null 2>&1
for r in t-base t-mus0 t-split11 t-1phase t-10phase btd; do
  $B sample --model $r/student.safetensors --steps 1 --n 10000 --out $r.safetensors --device cpu > /dev/null 2>&1
  echo "$r $($B eval --samples $r.safetensors --data toy:ring8 --reference ref.safetensors)"
done
