"""`info CHECKPOINT`: what a checkpoint says about itself, without loading the backbone."""

from __future__ import annotations

import argparse

from .. import finite_json
from ..backbones import get_backbone_spec, list_backbones
from ..checkpoints import read_metadata
from ..inference import default_checkpoint


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show a checkpoint's config, provenance and evaluation; list backbones")
    p.add_argument("checkpoint", nargs="?", help="a .safetensors checkpoint (default: the embedded model)")
    p.add_argument("--backbones", action="store_true", help="list the available backbones")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.backbones:
        for name in list_backbones():
            spec = get_backbone_spec(name)
            print(f"{name:24s} {spec.channels:5d} ch  stride {spec.stride:2d}  {spec.describe}")
        return 0
    from ..presets import departures_from_paper

    info = read_metadata(args.checkpoint or default_checkpoint())
    meta = info.to_metadata()
    cfg = info.config
    # which recipe it was trained with, and every field where it is not the paper's model
    meta["preset"] = cfg.preset or "(none)"
    meta["departures_from_paper"] = departures_from_paper(cfg)
    print(finite_json.dumps(meta, indent=2))
    return 0
