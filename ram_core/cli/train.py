"""`train --data voc --root PATH --split trainval [--val-split val] --out DIR ...`"""

from __future__ import annotations

import argparse

from ..config import LossConfig, RAMConfig


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, choices=["voc", "coco", "folder", "synthetic"], help="dataset format")
    p.add_argument("--root", required=True, help="dataset root (VOCdevkit, COCO folder, or image folder)")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed items (reported) instead of stopping")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a RAM (or baseline) head; from a feature cache by default")
    add_data_args(p)
    p.add_argument("--split", default="trainval")
    p.add_argument("--val-split", default=None, help="validation split; the best checkpoint is kept by its mAP")
    p.add_argument("--out", required=True, help="output folder for checkpoints, config and log")
    p.add_argument("--min-positives", type=int, default=1,
                   help="the validation mAP that picks the best epoch averages the classes with at least "
                        "this many validation positives (AP on one or two positives is mostly noise)")
    m = p.add_argument_group("model")
    m.add_argument("--head", choices=["ram", "baseline"], default="ram")
    m.add_argument("--backbone", default="tf_efficientnet_lite0")
    m.add_argument("--backbone-weights", default=None, help="weights file for vgg16/resnet, or 'random'")
    m.add_argument("--input-size", type=int, default=448)
    m.add_argument("--norm", choices=["imagenet", "backbone"], default="backbone",
                   help="normalisation: ImageNet mean/std or the backbone's own config")
    m.add_argument("--steps", type=int, default=5, help="K, recurrent steps after the global one")
    m.add_argument("--region-size", type=int, default=7)
    m.add_argument("--region-encoder", choices=["pool", "flatten"], default="flatten")
    m.add_argument("--region-channels", type=int, default=128, help="channels of the reduced map (flatten encoder)")
    m.add_argument("--hidden-size", type=int, default=512)
    m.add_argument("--embed-dim", type=int, default=512)
    m.add_argument("--dropout", type=float, default=0.3)
    m.add_argument("--transform-mode", choices=["direct", "anchored", "evidence"], default="direct")
    m.add_argument("--fuse-global", action=argparse.BooleanOptionalAction, default=False,
                   help="include the global step in the max fusion (the paper leaves it out)")
    m.add_argument("--imagenet-prior", action=argparse.BooleanOptionalAction, default=False,
                   help="add the ImageNet-class prior to the scores (VOC classes, backbones with an ImageNet head)")
    m.add_argument("--region-skip", action=argparse.BooleanOptionalAction, default=False,
                   help="also score each region's pooled feature with a linear classifier (a skip around the LSTM)")
    loss = p.add_argument_group("loss")
    loss.add_argument("--classification-loss", choices=["bce", "mse"], default="bce")
    loss.add_argument("--anchor-weight", type=float, default=0.1)
    loss.add_argument("--scale-weight", type=float, default=0.1)
    loss.add_argument("--positive-weight", type=float, default=0.1)
    loss.add_argument("--alpha", type=float, default=0.5)
    loss.add_argument("--beta", type=float, default=0.1)
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=30)
    o.add_argument("--batch-size", type=int, default=32)
    o.add_argument("--lr", type=float, default=1e-3)
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
    from ..backbones import IMAGENET_MEAN, IMAGENET_STD, get_backbone_spec
    from ..imagenet_prior import groups_for

    spec = get_backbone_spec(args.backbone)
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if args.norm == "imagenet" else (spec.mean, spec.std)
    groups = groups_for(class_names) if args.imagenet_prior else None
    return RAMConfig(
        class_names=class_names, backbone=args.backbone, input_size=args.input_size, mean=mean, std=std,
        head=args.head, num_steps=args.steps, region_size=args.region_size, region_encoder=args.region_encoder,
        region_channels=args.region_channels, embed_dim=args.embed_dim, hidden_size=args.hidden_size, dropout=args.dropout,
        region_skip=args.region_skip, transform_mode=args.transform_mode, fuse_global=args.fuse_global,
        imagenet_groups=groups if groups and any(groups) else None, freeze_backbone=not args.fine_tune,
        loss=LossConfig(classification=args.classification_loss, anchor_weight=args.anchor_weight,
                        scale_weight=args.scale_weight, positive_weight=args.positive_weight,
                        alpha=args.alpha, beta=args.beta),
    )


def run(args: argparse.Namespace) -> int:
    from ..data import build_dataset
    from ..training.loop import TrainOptions, train

    train_set = build_dataset(args.data, args.root, args.split, skip_bad=args.skip_bad)
    val_set = build_dataset(args.data, args.root, args.val_split, skip_bad=args.skip_bad) if args.val_split else None
    for ds in (train_set, val_set):
        if ds is not None and ds.skipped:
            print(f"{ds.name}: skipped {len(ds.skipped)} malformed item(s), e.g. {ds.skipped[0]}")
    cfg = config_from_args(args, list(train_set.class_names))
    opts = TrainOptions(
        out_dir=args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, backbone_lr=args.backbone_lr,
        weight_decay=args.weight_decay, seed=args.seed, views=("orig",) if args.no_flip else ("orig", "hflip"),
        use_cache=not args.fine_tune, cache_dir=args.cache_dir, workers=args.workers, device=args.device,
        resume=args.resume, backbone_weights=args.backbone_weights, min_positives=args.min_positives,
        data_description=f"{args.data}:{args.root} split={args.split} ({len(train_set)} images)",
    )
    result = train(cfg, opts, train_set, val_set)
    if val_set is not None:
        print(f"best checkpoint: {result['best_checkpoint']} (validation mAP {result['best']:.2f})")
    else:
        print(f"best checkpoint (lowest training loss): {result['best_checkpoint']}")
    return 0
