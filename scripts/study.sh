#!/bin/bash
# Issue #18: when does TRACT beat BTD? Every run is cached in docs/results/study/cache/, so
# rerunning skips finished runs and extending --budgets / --seeds runs only the new ones.
# Two processes side by side: run this script twice, with SHARD=0/2 and SHARD=1/2.
# (On the 2-core machine a 0.5M ring8 run took 55-300 s depending on the load; 2M, 6-11 min.)
set -e
B=${B:-tract-studio}
SHARD=${SHARD:-0/1}
W=${WORK:-/tmp/tract-study-work}
S="--out docs/results/study --work $W --shard $SHARD --seeds 0,1,2,3,4,5,6,7 --device cpu"
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
# session 7 (the SiLU kernel: a 2M ring8 run takes about 20 s on an idle core, 8M about 90 s)
nice -n 19 $B study --data toy:ring8 --teacher exact $S --methods tract,btd,btd-sh,tract+flat,tract+top=32,tract+sum,tract+keep-adam,tract+clip=3 --budgets 500000
nice -n 19 $B study --data toy:ring8 --teacher exact $S --methods tract,btd,btd-sh --budgets 8000000
nice -n 19 $B study --data toy:ring8 --teacher exact $S --steps 2 --methods tract,btd,btd-sh --budgets 500000,2000000
# Table 5 (fixed total) and Table 6 (fixed budget per phase)
nice -n 19 $B study --data toy:ring8 --teacher exact $S --methods tract,btd,tract+s=1024/1,tract+s=4096/256/16/1,tract+s=4096/512/64/8/1,tract+s=1024/256/64/16/4/1 --budgets 2000000
nice -n 19 $B study --data toy:ring8 --teacher exact $S --methods tract+per-phase,btd+per-phase,tract+s=1024/1+per-phase,tract+s=4096/256/16/1+per-phase,tract+s=4096/512/64/8/1+per-phase,tract+s=1024/256/64/16/4/1+per-phase --budgets 250000
nice -n 19 $B study --data toy:ring8 --teacher learned --teacher-samples 4000000 $S --methods tract,btd,btd-sh --budgets 2000000
nice -n 19 $B study --data toy:grid5 --teacher exact $S --methods tract,btd,btd-sh --budgets 2000000
# started in session 7, finished in session 9 (the cache keeps what finished):
nice -n 19 $B study --data toy:ring8 --teacher exact $S --methods tract,btd,tract+eps=1e-3,tract+sum+keep-adam+eps=1e-3,tract+s=1024/512/256/128/64/32/16/8/4/2/1 --budgets 2000000
nice -n 19 $B study --data toy:mix16 --teacher exact $S --methods tract,btd,btd-sh --budgets 500000,2000000
nice -n 19 $B study --data toy:ring8 --teacher exact $S --methods tract,btd --budgets 32000000
# session 9: grid5 at 8M (TRACT tied BTD there at 2M)
nice -n 19 $B study --data toy:grid5 --teacher exact $S --methods tract,btd,btd-sh --budgets 8000000
