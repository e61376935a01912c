#!/usr/bin/env bash
# The GPU session's checks, run once on a machine with an NVIDIA GPU and no Rust toolchain:
#   1. `pcll train --device cuda` on the parameter-golf baseline shape (9 x 512, vocab 1024,
#      seq 1024, batch 8), then its pack -> verify -> runtime score, with the trainer's own
#      score of the same weights (on the GPU) checked against the runtime's (CPU);
#   2. the minimal PyTorch script of the same model and optimizer on the same shards and
#      device (tokens/s and step time side by side);
#   3. `pcll unpack` of the GPU-trained artifact at 1, 2, 4, 8 and all threads (scaling);
#   4. `pcll compare` on the bundled MiniLM slice on this machine's CPU (SIMD rows).
# Build here first (x86-64) and carry the binary and the tokenized shards:
#   cargo build --release -p pcll-cli --features cuda
#   target/release/pcll tokenize ../shared/data/corpus/*.txt -o target/gpu-data --vocab 1024
#   PCLL=target/release/pcll DATA=target/gpu-data OUT=logs benches/gpu/check.sh
# Logs, the run's summary.json and loss chart go to OUT; the run itself (checkpoint, weights,
# artifact) to RUN.
set -u
PCLL=${PCLL:-target/release/pcll}
DATA=${DATA:-target/gpu-data}
OUT=${OUT:-/tmp/pcll-gpu}
RUN=${RUN:-/tmp/pcll-gpu-run}
STEPS=${STEPS:-400}
TRAIN_SECONDS=${TRAIN_SECONDS:-120}
mkdir -p "$OUT"
rm -rf "$RUN"
log() { echo "== $(date +%T) $*"; }

log GPU
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
nproc; grep -m1 "model name" /proc/cpuinfo
grep -o -w 'avx2\|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' '; echo

# NVRTC is loaded at run time: the CUDA toolkit's lib64, else PyTorch's wheel of it.
nvrtc=$(python3 -c 'import nvidia.cuda_nvrtc as m, os; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null)
for d in /usr/local/cuda/lib64 "$nvrtc"; do
    [ -n "$d" ] && [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

SHAPE=(--dim 512 --layers 9 --heads 8 --kv-heads 4 --seq-len 1024 --batch 8)
log "pcll train --device cuda (${STEPS} steps or ${TRAIN_SECONDS} s)"
TIME=(); [ -x /usr/bin/time ] && TIME=(/usr/bin/time -v)
"${TIME[@]}" timeout 330 "$PCLL" train "$DATA" -o "$RUN" --device cuda "${SHAPE[@]}" \
    --steps "$STEPS" --max-seconds "$TRAIN_SECONDS" --raw-max-elements 65536 --val-windows 64 \
    > "$OUT/train.log" 2> "$OUT/train.err"
echo "exit $?"
grep -v '^\s*$' "$OUT/train.log" | tail -45
grep -E "Maximum resident|Elapsed" "$OUT/train.err"
grep -v -E "^\s" "$OUT/train.err" | grep -v "Command being timed" | tail -5
cp "$RUN/summary.json" "$RUN/loss.svg" "$OUT/" 2>/dev/null

log "PyTorch, same shape, same shards"
timeout 150 python3 benches/python/train_gpt_torch.py --data "$DATA" --device cuda "${SHAPE[@]}" --steps 50
echo "exit $?"

if [ -f "$RUN/model.pcll" ]; then
    log "pcll unpack thread scaling ($(stat -c %s "$RUN/model.pcll") bytes)"
    for t in 1 2 4 8 "$(nproc)"; do
        TIMEFORMAT="threads $t: %R s wall, %U s user"
        time RAYON_NUM_THREADS=$t "$PCLL" unpack "$RUN/model.pcll" -o "$RUN/unpacked.safetensors" > /dev/null
    done
fi

log "pcll compare (bundled MiniLM slice)"
timeout 90 "$PCLL" compare conformance/data/minilm-l6-layer0-attn.safetensors --runs 3
log done
