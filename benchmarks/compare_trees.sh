#!/usr/bin/env bash
# Before/after check of a restructure: run the same benchmark command in two checkouts,
# alternating (A B A B ...), so both see the same machine load. Prints each run's output.
#   benchmarks/compare_trees.sh OLD_TREE NEW_TREE ROUNDS -- COMMAND ARGS...
# COMMAND runs from each tree's root with PYTHONPATH set to that tree.
set -euo pipefail
old=$1 new=$2 rounds=$3; shift 4
py=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
for r in $(seq 1 "$rounds"); do
  for tree in "$old" "$new"; do
    echo "=== round $r: $tree"
    (cd "$tree" && PYTHONPATH="$tree" "$py" "$@")
  done
done
