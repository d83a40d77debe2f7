"""The companion branch's own learning rate (training/param_groups.py, `--companion-lr`): the two branches
of a RAM head train independently, so a run with a companion rate equals, branch by branch, the runs
at each branch's rate.  That is what lets the model card read a per-branch recipe off two CV runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ram_core.cli import build_parser
from ram_core.cli.train import check_train_arguments, options_from_args
from ram_core.errors import RAMError
from ram_core.model import build_head
from ram_core.presets import default_config
from ram_core.training import cross_validation as cv
from ram_core.training.param_groups import head_param_groups


def _cfg():
    return default_config(["a", "b", "c"], input_size=128)


def test_groups_split_the_companion_from_the_rest_and_cover_every_parameter_once():
    head = build_head(_cfg())
    groups = head_param_groups(head, 1e-3, 4e-3)
    assert [g["lr"] for g in groups] == [1e-3, 4e-3]
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in head.parameters() if p.requires_grad]
    assert sorted(ids) == sorted(trainable) and len(set(ids)) == len(ids)
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in head.companion.parameters()}
    # no companion rate, or no companion branch: one group at lr
    assert len(head_param_groups(head, 1e-3)) == 1
    lone = build_head(_cfg().replace(companion="none"))
    assert [g["lr"] for g in head_param_groups(lone, 1e-3, 4e-3)] == [1e-3]


def _fit(recipe):
    rng = np.random.default_rng(0)
    n = 24
    y = (rng.random((n, 3)) < 0.4).astype(np.float32)
    feats = rng.normal(size=(n, 1280, 4, 4)).astype(np.float32)
    return cv.fit_head(_cfg(), recipe, [feats], y, np.ones_like(y), seed=0)


def _split(head):
    own = {id(p) for p in head.companion.parameters()}
    named = dict(head.named_parameters())
    comp = {k: v for k, v in named.items() if id(v) in own}
    rest = {k: v for k, v in named.items() if id(v) not in own}
    return comp, rest


def test_each_branch_trains_as_a_run_at_its_own_rate():
    kw = dict(epochs=2, batch_size=8, flip_views=False)
    mixed = _split(_fit(cv.Recipe(lr=1e-3, companion_lr=4e-3, **kw)))
    slow = _split(_fit(cv.Recipe(lr=1e-3, **kw)))
    fast = _split(_fit(cv.Recipe(lr=4e-3, **kw)))
    for name, value in mixed[0].items():  # companion: as in the run at 4e-3
        torch.testing.assert_close(value, fast[0][name], rtol=0, atol=1e-6)
    for name, value in mixed[1].items():  # recurrent branch: as in the run at 1e-3
        torch.testing.assert_close(value, slow[1][name], rtol=0, atol=1e-6)
    # and the rates did make a difference (else the test above proves nothing)
    assert any(not torch.allclose(v, slow[0][k]) for k, v in mixed[0].items())


def _parse(*extra):
    return build_parser().parse_args(["train", "--data", "voc", "--root", ".", "--out", "OUT", *extra])


def test_the_cli_passes_the_companion_rate_and_refuses_a_bad_one():
    assert options_from_args(_parse("--companion-lr", "4e-3"), [0], {"split": "trainval"}).companion_lr == 4e-3
    assert options_from_args(_parse(), [0], {"split": "trainval"}).companion_lr is None
    for bad in ("0", "-1", "nan"):
        with pytest.raises(RAMError, match="--companion-lr"):
            check_train_arguments(_parse("--companion-lr", bad))


def _script(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_cross_validate_reads_the_companion_rate_as_a_recipe_flag():
    script = _script("cross_validate")
    model, recipe = script.split_flags(["--preset", "default", "--lr", "2e-3", "--companion-lr", "4e-3"])
    assert model == ["--preset", "default"] and recipe.lr == 2e-3 and recipe.companion_lr == 4e-3


def test_an_assembled_run_takes_the_companion_from_one_run_and_the_rest_from_the_other():
    rng = np.random.default_rng(0)
    folds = np.arange(6) % 3

    def run():
        return {"folds": folds, "branch_logits": rng.normal(size=(6, 2, 4)), "logits": rng.normal(size=(6, 4)),
                "transforms": rng.normal(size=(6, 5, 4))}

    slow, fast = run(), run()
    out = _script("assemble_branches").assemble(slow, fast, 0.5)
    np.testing.assert_array_equal(out["branch_logits"][:, 0], slow["branch_logits"][:, 0])
    np.testing.assert_array_equal(out["branch_logits"][:, 1], fast["branch_logits"][:, 1])
    np.testing.assert_allclose(out["logits"], 0.5 * slow["branch_logits"][:, 0] + 0.5 * fast["branch_logits"][:, 1])
    np.testing.assert_array_equal(out["transforms"], slow["transforms"])
