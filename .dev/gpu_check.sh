#!/usr/bin/env bash
# The GPU check of issue #23: everything a first GPU should tell us, in one call of about 5 min of
# one GPU, with no hub access (every model is built from a config; tokenizers are trained on the
# env's own dataset). For this workplace's `device` tool:
#
#   here, once:   bash .dev/gpu_check.sh prepare        # peft + its two imports into .gpu/wheels (git-ignored)
#   device call:  run(command="bash .dev/gpu_check.sh", carry=[".gpu/wheels"], timeout_s=420)
#
# It prints, and writes to $OUT/gpu_check.txt (with each run's metrics.csv):
#   1. two iterations of the paper preset (128 games, 50 critic and 3 actor steps of batch 256) on
#      guess_city with a GPT-2-small-shaped actor and a RoBERTa-base-shaped critic: seconds per
#      part (rollout, critic, actor, evaluation) and the peak GPU memory of the run;
#   2. the peak GPU memory of one actor step of batch 256, whole and in micro-batches of 64 and 16;
#   3. one actor step of a Mistral-7B-shaped actor (random weights) with --lora
#      --gradient_checkpointing --bf16 --micro_batch_size 2: seconds and peak memory;
#   4. two processes on the CPU under torchrun (the data-parallel path; one GPU cannot show two).
# On a CPU, `SMOKE=1 bash .dev/gpu_check.sh` runs the same commands at toy sizes (~3 min).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check_out}

if [ "${1:-}" = prepare ]; then
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    # peft imports accelerate, which imports psutil (an abi3 wheel: any CPython 3)
    rm -rf .gpu/wheels && python3 -m pip download -q --no-deps -d .gpu/wheels peft accelerate psutil
    ls -la .gpu/wheels
    exit 0
fi

mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.txt") 2>&1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 MINARCHER_CACHE=/tmp/minarcher_cache
if ls .gpu/wheels/*.whl >/dev/null 2>&1; then  # peft for --lora (the machine has torch and transformers only)
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/wheels/*.whl && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"

GPT2=tiny:n_layer=12,n_embd=768,n_head=12                                      # GPT-2 small's shape
ROBERTA=tiny:num_hidden_layers=12,hidden_size=768,num_attention_heads=12,intermediate_size=3072
MISTRAL7B=tiny-mistral:hidden_size=4096,intermediate_size=14336,num_hidden_layers=32,num_attention_heads=32,num_key_value_heads=8
DEVICE=cuda; BC=100; GAMES=256; EVAL=64; BATCH=256; MICROS="0 64 16"; MBATCH=8; THREADS=""
if [ -n "${SMOKE:-}" ]; then  # the same commands at toy sizes, on the CPU
    GPT2=tiny; ROBERTA=tiny; MISTRAL7B=tiny-mistral; DEVICE=cpu; BC=3; GAMES=8; EVAL=4; BATCH=16; MICROS="0 4"
    MBATCH=4; THREADS="--threads 1"
    SMOKE_FLAGS=(--rollout_size 4 --critic_steps 2 --batch_size 8 --critic_batch_size 8)
fi
R=/tmp/gpu_check_runs; rm -rf $R; mkdir -p $R
peak() { python3 -c "import torch; print(f'peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB')" 2>/dev/null || true; }

echo; echo "== 1. paper preset, guess_city, GPT-2 + RoBERTa shapes, 2 iterations"
start=$(date +%s)
python3 - "$R/paper" <<EOF
import sys, time, torch, train_online
t = time.time()
train_online.main(["--preset", "paper", "--env", "guess_city", "--policy_lm", "$GPT2", "--critic_lm", "$ROBERTA",
                   "--device", "$DEVICE", "--bc_steps", "$BC", "--total_trajectories", "$GAMES", "--warmup_iters", "1",
                   "--eval_every", "2", "--eval_games", "$EVAL", "--out_dir", sys.argv[1], *"$THREADS".split(),
                   *"${SMOKE_FLAGS[*]:-}".split()])
if torch.cuda.is_available():
    print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB; {time.time() - t:.0f} s in all")
EOF
cp $R/paper/metrics.csv "$OUT/paper_metrics.csv"
echo "section 1: $(( $(date +%s) - start )) s"

echo; echo "== 2. one actor step of batch $BATCH, whole and micro-batched"
python3 -m benchmarks.bench_memory --preset paper --env guess_city --policy_lm "$GPT2" --critic_lm "$ROBERTA" \
    --device $DEVICE --batch_size $BATCH --micros $MICROS $THREADS

echo; echo "== 3. a Mistral-7B-shaped actor: LoRA + gradient checkpointing + bf16, micro-batches of 2"
python3 -m benchmarks.bench_memory --preset paper --env guess_city --policy_lm "$MISTRAL7B" --critic_lm tiny \
    --lora --gradient_checkpointing --bf16 --device $DEVICE --batch_size $MBATCH --micros 2 $THREADS \
    || echo "(section 3 failed: is peft installed? bash .dev/gpu_check.sh prepare, then carry .gpu/wheels)"

echo; echo "== 4. two processes (torchrun, gloo, CPU), tiny models"
python3 -m torch.distributed.run --nproc_per_node 2 --master_port 29650 train_online.py --preset tiny \
    --env twenty_questions_subset --bc_steps 3 --rollout_size 4 --critic_steps 2 --batch_size 4 \
    --critic_batch_size 8 --eval_games 4 --total_trajectories 8 --eval_every 1 --warmup_iters 0 --device cpu \
    --threads 1 --out_dir $R/ddp 2>&1 | grep -E "done|seconds per|error" || true
echo "done: $OUT/gpu_check.txt"
