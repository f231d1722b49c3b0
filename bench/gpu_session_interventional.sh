#!/usr/bin/env bash
# The lent-GPU session of 2026-11-28 (eighth): interventional runs spread over the machine's 16 host
# cores (one torch thread each), four of them on the GPU. Run from the repo root on the device
# machine, where python3 has torch with CUDA and $OUT is a folder that comes back. causal-learn is
# not in that machine's image: carry it (with momentchi2, pydot, graphviz) in an ignored folder
# named in `carry`, here .devpkgs/. PART=1 (about 8 min): run 0 of every 6-node seed 3, 5-25 and of
# 5-node seeds 0-9; PART=2 (about 5 min): restarts 1 and 2 of the seeds PART=1 flagged, and run 0
# of 6-node seeds 26-29. PART=3 (ninth session, about 9 min): run 0 of 7-node seeds 4-19 (5 of
# them on the GPU), then restarts 1 and 2 of the ones flagged (balance < 0.993).
# Output: $OUT/runs.jsonl (bench/interventional_run.py), $OUT/session.log.
set -u
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:$PWD/.devpkgs PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
L=$OUT/session.log
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$L" 2>&1
python3 -c 'import torch, causallearn.utils.cit; print("torch", torch.__version__, torch.cuda.get_device_name(0))' >>"$L" 2>&1
jobs=$(mktemp)
run_jobs() {  # run_jobs LIMIT FILE: one interventional_run.py per line "latents seed restart device", 16 at once
  xargs -P 16 -L 1 sh -c 'timeout '"$1"' python3 bench/interventional_run.py --latents "$1" --seed "$2" \
    --restart "$3" --device "$4" --out '"$OUT"'/runs.jsonl >>'"$L"' 2>&1' _ <"$2"
}
if [ "${PART:-1}" = 1 ]; then
  for s in 0 1 2 3; do echo "5 $s 0 cuda"; done >>"$jobs"
  for s in 3 $(seq 5 25); do echo "6 $s 0 cpu"; done >>"$jobs"
  for s in $(seq 4 9); do echo "5 $s 0 cpu"; done >>"$jobs"
  LIMIT=520
elif [ "${PART:-1}" = 3 ]; then
  for s in $(seq 4 19); do
    if [ "$s" -le 8 ]; then echo "7 $s 0 cuda"; else echo "7 $s 0 cpu"; fi
  done >>"$jobs"
  LIMIT=390
else
  for s in 8 12 13 16 18 20; do for r in 1 2; do echo "6 $s $r cpu"; done; done >>"$jobs"
  for s in 26 27 28 29; do echo "6 $s 0 cpu"; done >>"$jobs"
  LIMIT=290
fi
run_jobs "$LIMIT" "$jobs"
if [ "${PART:-1}" = 3 ]; then
  # Restarts 1 and 2 of the flagged runs: six on the GPU, the rest on host cores. (The first try
  # put all of them on the GPU at once: 16 processes on one GPU ran past 165 s each, while 4-6 at
  # once take 73-94 s.)
  python3 -c 'import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
jobs = [(r["seed"], k) for r in rows if r["latents"] == 7 and r["restart"] == 0 and r["target_balance"] < 0.993
        for k in (1, 2)]
for i, (s, k) in enumerate(jobs):
    print(7, s, k, "cuda" if i < 6 else "cpu")' "$OUT/runs.jsonl" >"$jobs.2"
  echo "phase 2 $(date +%T): $(wc -l <"$jobs.2") restarts" >>"$L"
  run_jobs 265 "$jobs.2"
fi
echo "end $(date +%T)" >>"$L"
