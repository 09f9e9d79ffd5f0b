#!/bin/bash
# Warm-cache timing of the series through one vault CLI, for before/after comparisons of two
# checkouts (compare.py drops the page cache, so its commit and checkout rows follow the disk).
#
#   python benchmarks/series.py SERIES --scale 0.5      # once
#   benchmarks/warm_compare.sh PATH/TO/vault SERIES REPO
#
# Prints three numbers: seconds to commit the 14 versions (one process each), to check out
# v014 and v011, and to re-commit the unchanged base model. Alternate two vaults a few times
# and compare medians.
set -euo pipefail
V=$1; S=$2; R=$3
rm -rf "$R" "$R-co1" "$R-co2"; "$V" --repo "$R" init >/dev/null
s=$(date +%s.%N)
for d in "$S"/base "$S"/checkpoints/checkpoint-{100,200,300,400,500,600,700,800,900,1000} "$S"/merged/merged-{1,2,3}; do
  "$V" --repo "$R" commit "$d" -m x >/dev/null
done
m=$(date +%s.%N)
"$V" --repo "$R" checkout v014 "$R-co1" >/dev/null; "$V" --repo "$R" checkout v011 "$R-co2" >/dev/null
e=$(date +%s.%N)
"$V" --repo "$R" commit "$S"/base -m again >/dev/null
e2=$(date +%s.%N)
python3 -c "print(f'{$m - $s:.3f} {$e - $m:.3f} {$e2 - $e:.3f}')"
