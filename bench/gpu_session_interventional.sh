#!/usr/bin/env bash
# The lent-GPU session of 2026-11-28 (eighth): interventional runs spread over the machine's 16 host
# cores (one torch thread each), four of them on the GPU. Run from the repo root on the device
# machine, where python3 has torch with CUDA and $OUT is a folder that comes back. causal-learn is
# not in that machine's image: carry it (with momentchi2, pydot, graphviz) in an ignored folder
# named in `carry`, here .devpkgs/. PART=1 (about 8 min): run 0 of every 6-node seed 3, 5-25 and of
# 5-node seeds 0-9; PART=2 (about 5 min): restarts 1 and 2 of the seeds PART=1 flagged, and run 0
# of 6-node seeds 26-29. Output: $OUT/runs.jsonl (bench/interventional_run.py), $OUT/session.log.
set -u
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:$PWD/.devpkgs PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
L=$OUT/session.log
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$L" 2>&1
python3 -c 'import torch, causallearn.utils.cit; print("torch", torch.__version__, torch.cuda.get_device_name(0))' >>"$L" 2>&1
jobs=$(mktemp)
if [ "${PART:-1}" = 1 ]; then
  for s in 0 1 2 3; do echo "5 $s 0 cuda"; done >>"$jobs"
  for s in 3 $(seq 5 25); do echo "6 $s 0 cpu"; done >>"$jobs"
  for s in $(seq 4 9); do echo "5 $s 0 cpu"; done >>"$jobs"
  LIMIT=520
else
  for s in 8 12 13 16 18 20; do for r in 1 2; do echo "6 $s $r cpu"; done; done >>"$jobs"
  for s in 26 27 28 29; do echo "6 $s 0 cpu"; done >>"$jobs"
  LIMIT=290
fi
xargs -P 16 -L 1 sh -c 'timeout '"$LIMIT"' python3 bench/interventional_run.py --latents "$1" --seed "$2" \
  --restart "$3" --device "$4" --out '"$OUT"'/runs.jsonl >>'"$L"' 2>&1' _ <"$jobs"
echo "end $(date +%T)" >>"$L"
