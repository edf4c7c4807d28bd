#!/usr/bin/env bash
# Reproduces README "Results": leave-one-condition-out on the built-in benchmark, held-out fog
# and snow; plain fine-tuning, the random-CLIP control and Domino with MiniLM text embeddings
# (head, full); 3 seeds each; one comparison table per held-out condition.
#   bash docs/results/loo_sweep.sh [extra overrides for every run]
# Writes work_dirs/results/loo_<condition>/{finetune,control_tiny_clip,minilm}/<job>/ and
# work_dirs/results/loo_<condition>/comparison.{md,csv,png}. About 1.5 hours on an idle 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-work_dirs/results}
S="schedule.max_iters=500 schedule.val_interval=500"
for held in fog snow; do
  E="+exp=synthetic_loo_$held"
  D="$OUT/loo_$held"
  python tools/train.py -m $E $S seed=0,1,2 hydra.sweep.dir=$D/finetune "$@"
  python tools/train.py -m $E domino=full domain=text $S seed=0,1,2 \
      hydra.sweep.dir=$D/control_tiny_clip "$@"
  python tools/train.py -m $E domino=head,full domain=text domain/text_encoder=minilm $S \
      seed=0,1,2 hydra.sweep.dir=$D/minilm "$@"
  python tools/compare.py $D --baseline domino=none --ignore paths --out $D
done
