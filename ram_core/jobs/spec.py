"""What a training job is asked to do, as a `python -m ram_core train` command line.

A JobSpec is what the Train page collects (data, validation, recipe, the main options).  It becomes
the exact `train` argument list the job runs, written into the job's folder, so every run from the
app can be repeated from a terminal, and the page, the job and the CLI share one parser and one way
to build a model's config from a recipe.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import RAMError

BASELINE_HEADS = {"baseline": "Baseline: global average pooling + linear",
                  "csra": "Baseline: CSRA (class-specific residual attention)"}
PRESET_LABELS = {"default": "The default model's recipe", "paper": "The paper's model (paper preset)"}
DATA_KINDS = ("voc", "coco", "folder", "synthetic")


class JobError(RAMError):
    """A training job that cannot be created, started, stopped or resumed as asked."""


def recipes() -> dict[str, str]:
    """Recipe name -> label: 'default' first, then every other preset in ram_core.presets.PRESETS,
    then the baseline heads.  Without a 'default' preset, 'default' is the `train` command's own
    defaults (no preset)."""
    from ..presets import PRESETS

    out = {"default": PRESET_LABELS["default"] if "default" in PRESETS else "The train command's defaults (no preset)"}
    out.update({n: PRESET_LABELS.get(n, f"Preset '{n}'") for n in sorted(PRESETS) if n != "default"})
    out.update(BASELINE_HEADS)
    return out


def recipe_args(recipe: str) -> list[str]:
    """The `train` options a recipe stands for.  A baseline head trains on the default recipe's other
    settings when there is a 'default' preset (the same features and optimisation, another head)."""
    from ..presets import PRESETS

    if recipe in PRESETS:
        return ["--preset", recipe]
    if recipe == "default":
        return []
    if recipe in BASELINE_HEADS:
        return (["--preset", "default"] if "default" in PRESETS else []) + ["--head", recipe]
    raise JobError(f"unknown recipe {recipe!r}; choose one of {', '.join(recipes())}")


def parse_train_args(argv: list[str]) -> argparse.Namespace:
    """`python -m ram_core train ARGV` parsed; a usage error becomes a JobError with argparse's message."""
    from ..cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return build_parser().parse_args(["train", *map(str, argv)])
    except SystemExit:
        lines = [line for line in err.getvalue().strip().splitlines() if line.strip()]
        message = lines[-1] if lines else "invalid options"
        raise JobError(message.split(": error: ", 1)[-1]) from None


@dataclass
class JobSpec:
    """One training run: the data, how it is validated, the recipe and the options changed from it."""

    data: str  # voc | coco | folder | synthetic
    root: str
    split: str | None = None  # None: the format's default (a folder: labels.csv / labels.json)
    val_split: str | None = None
    val_fraction: float | None = None  # hold out this fraction of the training photos instead
    split_seed: int = 0
    recipe: str = "default"
    epochs: int | None = None  # None: the recipe's value
    lr: float | None = None
    steps: int | None = None
    input_size: int | None = None
    batch_size: int | None = None
    fine_tune: bool = False
    skip_bad: bool = False
    device: str = "auto"
    extra_args: list[str] = field(default_factory=list)  # more `train` options, as typed on the command line
    name: str = ""

    def __post_init__(self) -> None:
        if self.data not in DATA_KINDS:
            raise JobError(f"unknown data format {self.data!r}; choose one of {', '.join(DATA_KINDS)}")
        if not str(self.root).strip():
            raise JobError("no dataset root given")
        if self.val_split and self.val_fraction is not None:
            raise JobError("give a validation split or a held-out fraction, not both")

    def train_argv(self, out_dir: str | None = None, cache_dir: str | None = None) -> list[str]:
        """The `train` arguments (without the leading 'train')."""
        argv = ["--data", self.data, "--root", str(self.root)]
        if self.split:
            argv += ["--split", self.split]
        if self.val_split:
            argv += ["--val-split", self.val_split]
        elif self.val_fraction is not None:
            argv += ["--val-fraction", f"{self.val_fraction:g}", "--split-seed", str(self.split_seed)]
        argv += recipe_args(self.recipe)
        for flag, value in (("--epochs", self.epochs), ("--lr", self.lr), ("--steps", self.steps),
                            ("--input-size", self.input_size), ("--batch-size", self.batch_size)):
            if value is not None:
                argv += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        if self.fine_tune:
            argv.append("--fine-tune")
        if self.skip_bad:
            argv.append("--skip-bad")
        argv += ["--device", self.device, *self.extra_args]
        if cache_dir is not None:
            argv += ["--cache-dir", str(cache_dir)]
        argv += ["--out", str(out_dir) if out_dir is not None else "OUT"]
        return argv

    def check(self) -> argparse.Namespace:
        """Parse the command line the job will run: a bad option is a JobError now, not in the job."""
        for flag in ("--out", "--cache-dir", "--resume"):
            if any(a == flag or a.startswith(flag + "=") for a in self.extra_args):
                raise JobError(f"{flag} is not an option of a job: each job writes into its own folder and "
                               "the app's feature cache; Resume continues a stopped job")
        args = parse_train_args(self.train_argv())
        if args.resume:  # an abbreviation such as --res
            raise JobError("--resume is not an option of a job: Resume continues a stopped job")
        from ..cli.train import check_train_arguments

        check_train_arguments(args)  # --epochs 0, sizes out of bounds: refused now, not in the job
        return args

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobSpec":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def recipe_values(recipe: str) -> dict[str, Any]:
    """The main options as the recipe sets them: epochs, lr, batch_size (the `train` command's
    values), steps (K; None for heads without steps) and input_size (the recipe's config)."""
    return dict(_recipe_values(recipe))


@functools.lru_cache(maxsize=32)
def _recipe_values(recipe: str) -> dict[str, Any]:
    from ..cli.train import config_from_args, resolve_lr

    args = resolve_lr(parse_train_args(["--data", "voc", "--root", ".", "--out", "OUT", *recipe_args(recipe)]))
    cfg = config_from_args(args, ["a", "b"])
    return {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
            "steps": cfg.num_steps if cfg.head == "ram" else None, "input_size": cfg.input_size}
