#!/usr/bin/env bash
# The README's "Training with vault watch", as a script:
#     bash examples/watch.sh
# tests/test_watch.py checks that the lines below the marker are exactly the README's, then runs
# this file and checks what it left: one version per checkpoint, the best pinned, the merge.
set -euo pipefail
cd "$(dirname "$0")/.."
# --- the README's commands ---
EXAMPLES="$PWD/examples"; export PATH="$PWD/.venv/bin:$PATH"    # run from the checkout
cd "$(mktemp -d)" && pwd                                          # an empty project folder

python "$EXAMPLES/watch_train.py" base base_model     # a tiny Llama (random init), safetensors
vault init
vault commit base_model -m "tiny Llama, random init" --tag llama-base

mkdir -p runs/exp1
vault watch runs/exp1 --settle 1 --pin-best eval_loss --consolidate best --base llama-base \
    --json > watch.jsonl &                            # commits each checkpoint as it lands
WATCH=$!
python "$EXAMPLES/watch_train.py" trainer runs/exp1 --base base_model --lora   # a real Trainer
until grep -q '"consolidate"' watch.jsonl; do kill -0 $WATCH; sleep 1; done    # run ended: merged
kill -TERM $WATCH && wait $WATCH                      # a clean stop: exit 0
cat watch.jsonl                                       # commit, commit, commit, consolidate
vault log --run exp1                                  # one version per checkpoint, steps, loss
vault backup list                                     # best-exp1, and the pre_consolidation pins
vault watch runs/exp1 --once && echo "nothing left"   # a restart commits nothing twice
vault verify
