#!/usr/bin/env bash
# The README's "Walkthrough: from training to a consolidated model", as a script:
#     bash examples/walkthrough.sh
# tests/test_walkthrough.py checks that the lines below the marker are exactly the README's, then
# runs this file, so the README cannot drift from what works.
set -euo pipefail
cd "$(dirname "$0")/.."
# --- the README's commands ---
EXAMPLES="$PWD/examples"; export PATH="$PWD/.venv/bin:$PATH"    # run from the checkout
cd "$(mktemp -d)" && pwd                                          # an empty project folder

python "$EXAMPLES/walkthrough.py" base base_model     # a tiny Llama (random weights) + data/
vault init --workdir current_model                    # .vault/ here; restore writes current_model/
vault commit base_model -m "tiny Llama, random init" --meta arch=llama --tag llama-base

python "$EXAMPLES/walkthrough.py" train base_model runs   # LoRA, Trainer, VaultCallback
vault log                                             # v002, v003: the checkpoints, with step and loss
vault show v003 --plot curve.png                      # files, losses, curve (sparkline + image)
vault diff v002 v003                                  # LoRA tensors changed, with relative L2

vault pin v002 --type milestone --reason "first adapter" --name first-adapter
vault backup runs/checkpoint-6 --type emergency --reason "before consolidating"
vault consolidate --base llama-base --adapter best-runs -m "tiny Llama + best adapter" \
    --training-data data/train.jsonl --json           # merged: v004, now latest and base
vault show base                                       # lineage: the base's and the adapter's ids
python "$EXAMPLES/walkthrough.py" load base           # load_state_dict: tensors from the store

vault delete v003 || echo "(refused: deleting needs --confirm)"
vault delete v003 --confirm                           # pinned as pre_deletion, then unnamed
vault log
vault restore llama-base                              # current_model/ holds exactly v001
echo "my notes" > current_model/NOTES.md
vault restore base                                    # NOTES.md is pinned as pre_restore first
vault backup list                                     # every pin, oldest first
vault unpin first-adapter
vault backup cleanup --retention-days 30              # a dry run: nothing is that old yet
vault gc
vault backup verify                                   # re-hash everything the pins keep
vault verify
