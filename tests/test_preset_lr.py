"""A recipe's learning rate: `train --preset paper` trains at presets.RECIPE_LR's 3e-4 unless --lr is
given; recipes without an entry at 1e-3; the app's recipe fills the same number."""

import pytest

from ram_core.cli import build_parser
from ram_core.cli.train import options_from_args, resolve_lr
from ram_core.jobs import recipe_values
from ram_core.presets import DEFAULT_LR, RECIPE_LR


def parse(*extra):
    return build_parser().parse_args(["train", "--data", "voc", "--root", ".", "--out", "OUT", *extra])


@pytest.mark.parametrize("extra,lr", [(["--preset", "paper"], RECIPE_LR[("paper", "ram")]), (["--preset", "default"], DEFAULT_LR),
                                      ([], DEFAULT_LR), (["--preset", "paper", "--lr", "0.002"], 0.002),
                                      (["--preset", "paper", "--head", "baseline"], DEFAULT_LR)])
def test_lr_comes_from_the_preset_unless_given(extra, lr):
    assert resolve_lr(parse(*extra)).lr == lr
    opts = options_from_args(parse(*extra), [0, 1], {"split": "trainval"})
    assert opts.lr == lr


def test_the_paper_preset_trains_slower_than_the_rest():
    assert RECIPE_LR[("paper", "ram")] == 3e-4 < DEFAULT_LR
    assert recipe_values("paper")["lr"] == RECIPE_LR[("paper", "ram")]
    assert recipe_values("default")["lr"] == DEFAULT_LR
