#!/bin/bash
# Issue #18: when does TRACT beat BTD? Every run is cached in docs/results/study/cache/, so
# rerunning skips finished runs and extending --budgets / --seeds runs only the new ones.
# Two processes side by side: run this script twice, with SHARD=0/2 and SHARD=1/2.
# (On the 2-core machine a 0.5M ring8 run took 55-300 s depending on the load; 2M, 6-11 min.)
set -e
B=${B:-tract-studio}
SHARD=${SHARD:-0/1}
W=${WORK:-/tmp/tract-study-work}
S="--out docs/results/study --work $W --shard $SHARD --seeds 0,1,2,3,4,5,6,7"
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
# 1. ring8, exact teacher: TRACT vs BTD (TRACT's recipe) vs BTD (Salimans & Ho's recipe)
nice -n 19 $B study --data toy:ring8 --teacher exact $S --methods tract,btd,btd-sh --budgets 500000
nice -n 19 $B study --data toy:ring8 --teacher exact $S --methods tract,btd --budgets 2000000
nice -n 19 $B study --data toy:ring8 --teacher exact $S --methods btd-sh --budgets 2000000
# 2. ring8, learned MLP teacher (trained once, committed in docs/results/study/teachers/)
nice -n 19 $B study --data toy:ring8 --teacher learned --teacher-samples 4000000 $S --methods tract,btd,btd-sh --budgets 500000
# 3. diagnostics of TRACT's final phase: 32x weight at t = T, flat loss weight
nice -n 19 $B study --data toy:ring8 --teacher exact $S --methods tract+top=32,tract+flat --budgets 500000
# 4. harder data
nice -n 19 $B study --data toy:grid5 --teacher exact $S --methods tract,btd --budgets 500000
# left for later sessions (same commands, more budget):
#   --budgets 8000000,32000000 on ring8; toy:grid5 and toy:mix16 at 2M+; --teacher learned at 2M+;
#   --steps 2 (TRACT 1024,32,2 vs BTD 1024->2)
