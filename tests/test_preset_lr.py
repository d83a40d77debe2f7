"""A recipe's learning rate (presets.RECIPE_LR, chosen by cross-validation): paper 3e-4, default 2e-3,
CSRA on the default's recipe 4e-3, unless --lr is given; recipes without an entry at 1e-3; the app's
recipes fill the same numbers."""

import pytest

from ram_core.cli import build_parser
from ram_core.cli.train import options_from_args, resolve_lr
from ram_core.jobs import recipe_values
from ram_core.presets import DEFAULT_LR, RECIPE_LR


def parse(*extra):
    return build_parser().parse_args(["train", "--data", "voc", "--root", ".", "--out", "OUT", *extra])


@pytest.mark.parametrize("extra,lr", [(["--preset", "paper"], 3e-4), (["--preset", "default"], 2e-3),
                                      (["--preset", "default", "--head", "csra"], 4e-3),
                                      (["--preset", "default", "--head", "baseline"], DEFAULT_LR),
                                      ([], DEFAULT_LR), (["--preset", "paper", "--lr", "0.002"], 0.002),
                                      (["--preset", "paper", "--head", "baseline"], DEFAULT_LR)])
def test_lr_comes_from_the_preset_unless_given(extra, lr):
    assert resolve_lr(parse(*extra)).lr == lr
    opts = options_from_args(parse(*extra), [0, 1], {"split": "trainval"})
    assert opts.lr == lr


def test_the_apps_recipes_fill_the_same_learning_rates():
    assert recipe_values("paper")["lr"] == RECIPE_LR[("paper", "ram")] == 3e-4
    assert recipe_values("default")["lr"] == RECIPE_LR[("default", "ram")]
    assert recipe_values("csra")["lr"] == RECIPE_LR[("default", "csra")]
    assert recipe_values("baseline")["lr"] == DEFAULT_LR


@pytest.mark.parametrize("extra,companion", [(["--preset", "default"], 4e-3),
                                             (["--preset", "default", "--lr", "1e-3"], 2e-3),
                                             (["--preset", "default", "--companion-lr", "5e-4"], 5e-4),
                                             (["--preset", "default", "--head", "csra"], None),
                                             (["--preset", "paper"], None), ([], None)])
def test_the_default_recipes_companion_learns_at_twice_its_rate(extra, companion):
    opts = options_from_args(parse(*extra), [0, 1], {"split": "trainval"})
    assert opts.companion_lr == (None if companion is None else pytest.approx(companion))
