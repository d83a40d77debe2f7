"""`train --data voc --root PATH --split trainval [--val-split val | --val-fraction 0.2] --out DIR [--preset paper] ...`"""

from __future__ import annotations

import argparse
from typing import Any

from ..config import CLASSIFICATION_LOSSES, COMPANIONS, FUSIONS, HEADS, IMAGENET_MODES, REGION_ENCODERS, LossConfig, RAMConfig
from ..safe_text import plain

# What a model option means when neither it nor a preset says otherwise.
MODEL_DEFAULTS: dict[str, Any] = {
    "head": "ram", "backbone": "tf_efficientnet_lite0", "input_size": 448, "norm": "backbone", "steps": 5,
    "region_size": 7, "region_encoder": "flatten", "region_channels": 128, "hidden_size": 512, "embed_dim": 512,
    "z_size": 0, "memory": True, "dropout": 0.3, "transform_mode": "direct", "init_scale": 0.5,
    "fuse_global": False, "imagenet_prior": False, "imagenet_mode": "prior", "region_skip": False,
    "csra_lambda": 0.1, "csra_temperature": 1.0, "test_time_flip": False, "feature_norm": False, "fusion": "max", "global_classifier": False,
    "evidence_sigma": 0.25, "evidence_inhibition": 0.0, "evidence_explained": 0.0,
    "global_attention": 0.0,
    "companion": "none", "companion_weight": 0.5,
    "classification_loss": "bce", "anchor_weight": 0.1, "scale_weight": 0.1, "positive_weight": 0.1,
    "gamma": 1.0, "alpha": 0.5, "beta": 0.1,
}
# option name -> RAMConfig field (or "loss.<field>")
_FIELDS = {
    "head": "head", "backbone": "backbone", "input_size": "input_size", "steps": "num_steps",
    "region_size": "region_size", "region_encoder": "region_encoder", "region_channels": "region_channels",
    "hidden_size": "hidden_size", "embed_dim": "embed_dim", "z_size": "z_size", "memory": "memory",
    "dropout": "dropout", "transform_mode": "transform_mode", "init_scale": "init_scale",
    "fuse_global": "fuse_global", "imagenet_mode": "imagenet_mode", "region_skip": "region_skip",
    "csra_lambda": "csra_lambda", "csra_temperature": "csra_temperature", "test_time_flip": "test_time_flip",
    "feature_norm": "feature_norm", "fusion": "fusion", "global_classifier": "global_classifier",
    "evidence_sigma": "evidence_sigma", "evidence_inhibition": "evidence_inhibition",
    "evidence_explained": "evidence_explained",
    "global_attention": "global_attention", "companion": "companion", "companion_weight": "companion_weight",
    "classification_loss": "loss.classification", "anchor_weight": "loss.anchor_weight",
    "scale_weight": "loss.scale_weight", "positive_weight": "loss.positive_weight", "gamma": "loss.gamma",
    "alpha": "loss.alpha", "beta": "loss.beta",
}


# The training split when --split is not given; a folder's None finds labels.csv / labels.json itself.
DEFAULT_TRAIN_SPLIT = {"voc": "trainval", "coco": "train", "folder": None, "synthetic": "trainval"}


def _d(name: str) -> str:
    return f" (default: {MODEL_DEFAULTS[name]})"


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, choices=["voc", "coco", "folder", "synthetic"], help="dataset format")
    p.add_argument("--root", required=True, help="dataset root (VOCdevkit, COCO folder, or image folder)")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed items (reported) instead of stopping")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Model and loss options.  All default to None: a preset fills what the user did not give."""
    from ..presets import DEFAULT_INPUT_SIZE, DEFAULT_STEPS, PRESETS

    m = p.add_argument_group("model (an option given here overrides the preset's value; the defaults shown "
                             "are those without --preset)")
    m.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a named recipe: 'paper' = the paper's model and loss (docs/PAPER.md); 'default' = the "
                        f"shipped default model's (K = {DEFAULT_STEPS}, {DEFAULT_INPUT_SIZE} x {DEFAULT_INPUT_SIZE}, evidence "
                        "localizer, CSRA companion; assets/MODEL_CARD.md)")
    m.add_argument("--head", choices=list(HEADS), help="ram: recurrent attention; baseline: global average "
                   "pooling + linear; csra: class-specific residual attention" + _d("head"))
    m.add_argument("--backbone", help=_d("backbone"))
    m.add_argument("--backbone-weights", default=None, help="weights file for vgg16/resnet, or 'random'")
    m.add_argument("--input-size", type=int, help=_d("input_size"))
    m.add_argument("--norm", choices=["imagenet", "backbone"],
                   help="normalisation: ImageNet mean/std or the backbone's own config" + _d("norm"))
    m.add_argument("--steps", type=int, help="K, recurrent steps after the global one" + _d("steps"))
    m.add_argument("--region-size", type=int, help=_d("region_size"))
    m.add_argument("--region-encoder", choices=list(REGION_ENCODERS), help=_d("region_encoder"))
    m.add_argument("--region-channels", type=int,
                   help="channels of the reduced map (flatten, maxpool; 0 = no reduction)" + _d("region_channels"))
    m.add_argument("--hidden-size", type=int, help=_d("hidden_size"))
    m.add_argument("--embed-dim", type=int, help=_d("embed_dim"))
    m.add_argument("--z-size", type=int, help="size of z_k = ReLU(W_z h_k), which scores and the next "
                   "transform are read from; 0 = read off h_k" + _d("z_size"))
    m.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None,
                   help="carry the LSTM state across steps (--no-memory: reset it every step)" + _d("memory"))
    m.add_argument("--dropout", type=float, help=_d("dropout"))
    m.add_argument("--transform-mode", choices=["direct", "anchored", "evidence"], help=_d("transform_mode"))
    m.add_argument("--evidence-sigma", type=float,
                   help="evidence localizer: how far a step searches around its anchor" + _d("evidence_sigma"))
    m.add_argument("--evidence-inhibition", type=float,
                   help="evidence localizer: lower the evidence where earlier steps looked by this much "
                        "(steps look for other objects; 0 = off)" + _d("evidence_inhibition"))
    m.add_argument("--evidence-explained", type=float,
                   help="evidence localizer: lower a class's evidence where an earlier step looked and scored "
                        "it, by this many standard deviations times that score (0 = off)" + _d("evidence_explained"))
    m.add_argument("--init-scale", type=float, help="s_x = s_y at the start" + _d("init_scale"))
    m.add_argument("--fuse-global", action=argparse.BooleanOptionalAction, default=None,
                   help="include the global step in the max fusion (the paper leaves it out)")
    m.add_argument("--fusion", choices=list(FUSIONS),
                   help="max: the category-wise max over the steps (the paper's); average: the mean of the global "
                        "step's scores and the steps' max" + _d("fusion"))
    m.add_argument("--imagenet-prior", action=argparse.BooleanOptionalAction, default=None,
                   help="use the ImageNet classifier's class groups (VOC classes, backbones with an ImageNet head)")
    m.add_argument("--imagenet-mode", choices=list(IMAGENET_MODES),
                   help="prior: the group's ImageNet probability as a logit; init: classifiers start from the "
                        "group's mean ImageNet weights" + _d("imagenet_mode"))
    m.add_argument("--region-skip", action=argparse.BooleanOptionalAction, default=None,
                   help="also score each region's pooled feature with a linear classifier (a skip around the LSTM)")
    m.add_argument("--csra-lambda", type=float, help=_d("csra_lambda"))
    m.add_argument("--global-attention", type=float,
                   help="RAM with --region-skip: step 0 adds this times a class-specific attention pooling of "
                        "the region classifier's class maps (CSRA's term); 0 = off" + _d("global_attention"))
    m.add_argument("--global-classifier", action=argparse.BooleanOptionalAction, default=None,
                   help="RAM with --region-skip: the global step has its own classifier (not the regions')"
                        + _d("global_classifier"))
    m.add_argument("--csra-temperature", type=float, help=_d("csra_temperature"))
    m.add_argument("--companion", choices=list(COMPANIONS),
                   help="RAM: a second branch on the whole map (csra: a CSRA head), trained on its own loss; "
                        "the scores mix the two branches" + _d("companion"))
    m.add_argument("--companion-weight", type=float,
                   help="RAM with --companion: the recurrent branch's share of the image's logits "
                        "(the companion has the rest)" + _d("companion_weight"))
    m.add_argument("--test-time-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="average the scores of each image and its mirror image at inference")
    m.add_argument("--feature-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="RAM: standardise each channel of the map (statistics of the training photos' features) "
                        "before the region encoder" + _d("feature_norm"))
    loss = p.add_argument_group("loss: L = cls + gamma * (scale_weight L_S + anchor_weight L_A + positive_weight L_P)")
    loss.add_argument("--classification-loss", choices=list(CLASSIFICATION_LOSSES),
                      help="softmax_mse: the paper's; bce; sigmoid_mse" + _d("classification_loss"))
    loss.add_argument("--anchor-weight", type=float, help=_d("anchor_weight"))
    loss.add_argument("--scale-weight", type=float, help=_d("scale_weight"))
    loss.add_argument("--positive-weight", type=float, help=_d("positive_weight"))
    loss.add_argument("--gamma", type=float, help=_d("gamma"))
    loss.add_argument("--alpha", type=float, help=_d("alpha"))
    loss.add_argument("--beta", type=float, help=_d("beta"))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a RAM (or baseline) head; from a feature cache by default")
    add_data_args(p)
    p.add_argument("--split", default=None,
                   help="voc: trainval (default)/train/...; coco: train (default)/train2014/...; folder: the "
                        "labels file (default: labels.csv or labels.json in --root); synthetic: trainval (default)")
    val = p.add_mutually_exclusive_group()
    val.add_argument("--val-split", default=None, help="validation split; the best checkpoint is kept by its mAP")
    val.add_argument("--val-fraction", type=float, default=None,
                     help="hold out this fraction of the training images for validation (e.g. 0.2); which ones "
                          "depends only on --split-seed and the image ids, and is written to config.json")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the --val-fraction split")
    p.add_argument("--out", required=True, help="output folder for checkpoints, config and log")
    p.add_argument("--min-positives", type=int, default=1,
                   help="the validation mAP that picks the best epoch averages the classes with at least "
                        "this many validation positives (AP on one or two positives is mostly noise)")
    add_model_args(p)
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=30)
    o.add_argument("--batch-size", type=int, default=32)
    o.add_argument("--lr", type=float, default=None,
                   help="learning rate of the head (default: the recipe's, presets.RECIPE_LR: paper 3e-4, "
                        "default 2e-3, default with --head csra 4e-3; otherwise 1e-3)")
    o.add_argument("--companion-lr", type=float, default=None,
                   help="learning rate of the companion branch (a RAM head with --companion csra); "
                        "default: the recipe's multiple of --lr (presets.RECIPE_COMPANION_LR_SCALE: twice "
                        "--lr for the default preset), otherwise the same as --lr")
    o.add_argument("--backbone-lr", type=float, default=1e-4)
    o.add_argument("--weight-decay", type=float, default=1e-4)
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--fine-tune", action="store_true", help="train the backbone too (no feature cache; GPU advised)")
    o.add_argument("--no-flip", action="store_true", help="no horizontal-flip augmentation")
    o.add_argument("--cache-dir", default="cache/features")
    o.add_argument("--workers", type=int, default=2)
    o.add_argument("--device", default="auto")
    o.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace, class_names: list[str]) -> RAMConfig:
    """The preset's config (or MODEL_DEFAULTS'), with every option the user gave applied on top.
    A modified preset keeps its name; `info` lists every field where it departs from the paper."""
    from ..backbones import IMAGENET_MEAN, IMAGENET_STD, get_backbone_spec
    from ..imagenet_prior import groups_for
    from ..presets import preset_config

    given = {k: getattr(args, k) for k in MODEL_DEFAULTS if getattr(args, k, None) is not None}
    preset = getattr(args, "preset", None)
    if preset:
        sizes = {"backbone": "backbone", "input_size": "input_size", "steps": "num_steps"}
        cfg = preset_config(preset, class_names, **{sizes[k]: given[k] for k in sizes if k in given})
        values = given
    else:
        cfg = RAMConfig(class_names=list(class_names))
        values = {**MODEL_DEFAULTS, **given}
    top: dict[str, Any] = {}
    loss: dict[str, Any] = {}
    for name, value in values.items():
        target = _FIELDS.get(name)
        if target is not None and target.startswith("loss."):
            loss[target[5:]] = value
        elif target is not None:
            top[target] = value
    if "norm" in values:
        spec = get_backbone_spec(top.get("backbone", cfg.backbone))
        top["mean"], top["std"] = (IMAGENET_MEAN, IMAGENET_STD) if values["norm"] == "imagenet" else (spec.mean, spec.std)
    if "imagenet_prior" in values:
        groups = groups_for(class_names) if values["imagenet_prior"] else None
        top["imagenet_groups"] = groups if groups and any(groups) else None
    if getattr(args, "fine_tune", False):
        top["freeze_backbone"] = False
    if top.get("head", cfg.head) != "ram":
        # another head on a RAM preset's recipe (e.g. --preset default --head csra): the options only the
        # RAM head has are left at their off values unless the user gave them
        top.setdefault("global_attention", 0.0)
        top.setdefault("global_classifier", False)
        top.setdefault("companion", "none")
    return cfg.replace(**top, loss=LossConfig(**{**vars(cfg.loss), **loss}))


def datasets_from_args(args: argparse.Namespace):
    """(train set, validation set or None, data record for config.json) from --data/--root/--split and
    --val-split or --val-fraction.  A folder's validation labels are read with the training set's
    classes, so the two share one column order (an unknown label there is an error naming it)."""
    import os

    from ..data import build_dataset
    from ..data.splits import hold_out, split_digest

    split = args.split if args.split is not None else DEFAULT_TRAIN_SPLIT[args.data]
    val_fraction = getattr(args, "val_fraction", None)
    train_set = build_dataset(args.data, args.root, split, skip_bad=args.skip_bad)
    val_set = None
    if args.val_split:
        extra = {"class_names": train_set.class_names} if args.data == "folder" else {}
        val_set = build_dataset(args.data, args.root, args.val_split, skip_bad=args.skip_bad, **extra)
    if split is None and getattr(train_set, "labels_file", None) is not None:
        split = train_set.labels_file.name  # the labels file a folder was read from
    if not args.val_split and val_fraction is not None:
        skipped = train_set.skipped
        train_set, val_set = hold_out(train_set, val_fraction, args.split_seed)
        train_set.skipped = skipped
    data = {"kind": args.data, "root": os.path.abspath(args.root), "split": split,
            "val_split": args.val_split, "val_fraction": val_fraction,
            "split_seed": args.split_seed if val_fraction is not None else None,
            "train_images": len(train_set), "val_images": len(val_set) if val_set is not None else 0,
            "val_ids": split_digest(val_set.ids) if val_set is not None else None}
    return train_set, val_set, data


def resolve_lr(args: argparse.Namespace) -> argparse.Namespace:
    """Fill --lr from the preset when it was not given (presets.preset_lr), and --companion-lr from the
    preset's multiple of --lr (presets.preset_companion_lr); returns args."""
    from ..presets import preset_companion_lr, preset_lr

    preset, head = getattr(args, "preset", None), getattr(args, "head", None)
    if getattr(args, "lr", None) is None:
        args.lr = preset_lr(preset, head)
    if getattr(args, "companion_lr", None) is None:
        args.companion_lr = preset_companion_lr(preset, args.lr, head)
    return args


def options_from_args(args: argparse.Namespace, train_set, data: dict[str, Any]):
    """The TrainOptions of a parsed `train` command line.  The data description names the dataset root
    by its folder name: a checkpoint does not carry this machine's paths."""
    import os

    from ..training.loop import TrainOptions

    resolve_lr(args)
    split = f"split={data['split']}"
    if data.get("val_fraction") is not None:
        split += f" minus {100 * data['val_fraction']:g}% held out (split seed {data['split_seed']})"
    return TrainOptions(
        out_dir=args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        companion_lr=args.companion_lr, backbone_lr=args.backbone_lr,
        weight_decay=args.weight_decay, seed=args.seed, views=("orig",) if args.no_flip else ("orig", "hflip"),
        use_cache=not args.fine_tune, cache_dir=args.cache_dir, workers=args.workers, device=args.device,
        resume=args.resume, backbone_weights=args.backbone_weights, min_positives=args.min_positives,
        data_description=f"{args.data}:{os.path.basename(os.path.abspath(args.root))} {split} ({len(train_set)} images)",
        data=data,
    )


def check_train_arguments(args: argparse.Namespace) -> None:
    """Refuse options that cannot train, before any data is read: --epochs 0, a batch of 0, a learning rate
    that is not a positive finite number, and model sizes outside config.CONFIG_BOUNDS (the same bounds a
    checkpoint is read with).  Raises RAMError naming every problem found."""
    import math

    from ..config import ConfigBoundsError, check_config_dict
    from ..errors import RAMError

    problems = []
    ranges = {"epochs": (1, 100_000), "batch_size": (1, 65_536), "workers": (0, 256), "min_positives": (1, 10**9)}
    for name, (lo, hi) in ranges.items():
        value = getattr(args, name, None)
        if value is not None and not lo <= value <= hi:
            problems.append(f"--{name.replace('_', '-')} must be between {lo} and {hi}, got {value}")
    for name, positive in (("lr", True), ("companion_lr", True), ("backbone_lr", True), ("weight_decay", False)):
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and (value > 0 if positive else value >= 0) and value <= 10):
            low = "above" if positive else "of at least"
            problems.append(f"--{name.replace('_', '-')} must be a finite number {low} 0 and at most 10, got {value}")
    fraction = getattr(args, "val_fraction", None)
    if fraction is not None and not (math.isfinite(fraction) and 0 < fraction < 1):
        problems.append(f"--val-fraction must be between 0 and 1 (exclusive), got {fraction}")
    if not problems:
        try:
            check_config_dict(config_from_args(args, ["class"]).to_dict())
        except (ConfigBoundsError, ValueError, TypeError) as exc:
            problems.append(f"the model options do not describe a model: {exc}")
    if problems:
        raise RAMError("; ".join(problems))


def run(args: argparse.Namespace) -> int:
    from ..training.loop import train

    check_train_arguments(resolve_lr(args))
    train_set, val_set, data = datasets_from_args(args)
    for ds in (train_set, val_set):
        if ds is not None and ds.skipped:
            print(plain(f"{ds.name}: skipped {len(ds.skipped)} malformed item(s), e.g. {ds.skipped[0]}"))
    cfg = config_from_args(args, list(train_set.class_names))
    result = train(cfg, options_from_args(args, train_set, data), train_set, val_set)
    if result["best_checkpoint"] is None:  # never name a file this run did not write
        print("no checkpoint was written (no epoch finished)")
    elif val_set is not None:
        print(f"best checkpoint: {result['best_checkpoint']} (validation mAP {result['best']:.2f})")
    else:
        print(f"best checkpoint (lowest training loss): {result['best_checkpoint']}")
    return 0
