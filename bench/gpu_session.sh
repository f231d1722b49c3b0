#!/usr/bin/env bash
# One lent-GPU session (about 8 minutes; run from the repo root on the device machine, where
# python3 has torch with CUDA and $OUT is a folder that comes back):
#   1. bench/gpu_train.py alone on the GPU: crlkit's trainer vs a plain loop (images/s);
#   2. then, side by side: contrastive long runs (n = 10, 3 layers, Laplace, 30k steps) on the
#      GPU, and iVAE runs on 3 leaky-ReLU layers with larger budgets (bench/ivae_budget.py),
#      wider models on the GPU and the library's widths on the machine's CPU cores.
# CONTRASTIVE=0 skips the contrastive runs; BUDGET (default 300) is each iVAE run's seconds.
# Outputs: $OUT/session.log, $OUT/gpu_train.json, $OUT/contrastive_s{0,1}.json, $OUT/ivae.jsonl.
set -u
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/session.log"; }
log "start; $(OMP_NUM_THREADS= nproc) CPUs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$OUT/session.log" 2>&1
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))' >>"$OUT/session.log" 2>&1

log "gpu_train"
timeout 150 python3 bench/gpu_train.py --seconds 10 >"$OUT/gpu_train.json" 2>>"$OUT/session.log"
log "gpu_train rc=$? $(cat "$OUT/gpu_train.json")"

if [ "${CONTRASTIVE:-1}" = 1 ]; then
  for s in 0 1; do
    ( timeout 430 python3 -m crlkit identify --method contrastive --steps 30000 --seed $s --device cuda \
        --out /tmp/contrastive_s$s >>"$OUT/session.log" 2>&1
      cp /tmp/contrastive_s$s/results.json "$OUT/contrastive_s$s.json" 2>/dev/null
      log "contrastive seed $s done" ) &
  done
fi

BUDGET=${BUDGET:-300}
ivae() {  # ivae DEVICE ARGS...
  local dev=$1; shift
  ( timeout $((BUDGET + 120)) python3 bench/ivae_budget.py --device "$dev" --seconds $BUDGET "$@" \
      >>"$OUT/ivae.jsonl" 2>>"$OUT/session.log"
    log "ivae $dev $* rc=$?" ) &
}
# on the GPU: wide models, decoder variance 1e-3, lr 1e-3 (at lr 1e-2 widths 512 and 1024 diverged)
for s in 0 1; do
  ivae cuda --seed $s --hidden 512 --decoder-var 1e-3 --lr 1e-3 --calibration-steps 500
done
# on the CPU cores, one thread each: the library's widths, a few times the default steps
for s in 0 1; do
  ivae cpu --seed $s
  ivae cpu --seed $s --decoder-var 1e-3
  ivae cpu --seed $s --decoder-var 1e-3 --hidden 256
  ivae cpu --seed $s --decoder-var 1e-3 --lr 3e-3
done
for s in 2 3; do
  ivae cpu --seed $s
  ivae cpu --seed $s --decoder-var 1e-3
done
wait
log "done"
