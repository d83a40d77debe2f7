"""The data side of training on one's own photos: labels-file messages that name the line, the seeded
held-out validation split, and `train --data folder` finding its labels file by itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ram_core.cli import main
from ram_core.data import FolderDataset
from ram_core.data.splits import held_out_indices, hold_out, split_digest
from ram_core.data.synthetic import make_synthetic_folder
from ram_core.errors import DatasetError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root, classes = make_synthetic_folder(tmp_path_factory.mktemp("folder"), 20, image_size=48, seed=3)
    return root, classes


def _images(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "images").glob("*.jpg"))


def test_csv_messages_name_the_line_as_an_editor_counts_it(folder, tmp_path):
    root, _ = folder
    a, b = _images(root)[:2]
    # a blank line and a field quoted over two lines before the bad row: it is on line 6
    bad = root / "bad_row.csv"
    bad.write_text(f'image,labels\n\n{a},"circle;\nsquare"\n{b},circle\n{b}\n')
    with pytest.raises(DatasetError, match=r"bad_row\.csv, line 6: expected 2 columns"):
        FolderDataset(root, bad)
    unclosed = root / "unclosed.csv"
    unclosed.write_text(f'image,labels\n{a},circle\n{b},"square\n')
    with pytest.raises(DatasetError, match=r"unclosed\.csv, line 3: cannot parse the CSV .*quote that is never closed"):
        FolderDataset(root, unclosed)


def test_json_parse_error_names_line_and_column(folder):
    root, _ = folder
    a, b = _images(root)[:2]
    broken = root / "broken.json"
    broken.write_text(f'{{\n  "{a}": ["circle"],\n  "{b}": ["square"\n}}\n')
    with pytest.raises(DatasetError, match=r"broken\.json: cannot parse the JSON at line 4, column 1"):
        FolderDataset(root, broken)


def test_held_out_split_is_seeded_and_independent_of_file_order(folder):
    root, _ = folder
    ds = FolderDataset(root)
    train, val = hold_out(ds, 0.25, seed=7)
    assert len(val) == 5 and len(train) == 15 and not set(train.ids) & set(val.ids)
    again = hold_out(ds, 0.25, seed=7)[1]
    assert again.ids == val.ids
    reordered = ds.subset(list(range(len(ds)))[::-1])  # the labels file in another order
    assert sorted(hold_out(reordered, 0.25, seed=7)[1].ids) == sorted(val.ids)
    assert hold_out(ds, 0.25, seed=8)[1].ids != val.ids  # another seed, another split
    np.testing.assert_array_equal(val.targets, ds.targets[[ds.ids.index(i) for i in val.ids]])
    assert split_digest(val.ids) == split_digest(list(reversed(val.ids)))


def test_held_out_fraction_must_leave_images_on_both_sides():
    assert held_out_indices(["a", "b"], 0.99, 0) and len(held_out_indices(["a", "b"], 0.99, 0)) == 1
    with pytest.raises(DatasetError, match="between 0 and 1"):
        held_out_indices(["a", "b", "c"], 1.0, 0)
    with pytest.raises(DatasetError, match="at least 2 images"):
        held_out_indices(["a"], 0.5, 0)


def test_train_on_a_folder_finds_labels_csv_and_writes_the_split_into_its_config(folder, tmp_path, capsys):
    root, classes = folder
    out = tmp_path / "run"
    code = main(["train", "--data", "folder", "--root", str(root), "--val-fraction", "0.25", "--split-seed", "3",
                 "--out", str(out), "--input-size", "48", "--steps", "2", "--region-size", "2", "--hidden-size",
                 "8", "--embed-dim", "8", "--epochs", "1", "--batch-size", "8", "--no-flip",
                 "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--workers", "0"])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    data = config["options"]["data"]
    val = hold_out(FolderDataset(root), 0.25, seed=3)[1]
    assert data["kind"] == "folder" and data["split"] == "labels.csv"
    assert data["val_fraction"] == 0.25 and data["split_seed"] == 3
    assert data["train_images"] == 15 and data["val_images"] == 5 and data["val_ids"] == split_digest(val.ids)
    assert config["config"]["class_names"] == classes
    assert "val_mAP" in json.loads((out / "log.jsonl").read_text().splitlines()[0])


def test_val_split_and_val_fraction_exclude_each_other(folder, tmp_path, capsys):
    root, _ = folder
    with pytest.raises(SystemExit):
        main(["train", "--data", "folder", "--root", str(root), "--val-split", "x.csv", "--val-fraction", "0.2",
              "--out", str(tmp_path / "x")])
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_folder_validation_file_is_read_with_the_training_classes(folder, tmp_path):
    from ram_core.cli.train import datasets_from_args
    from ram_core.jobs.spec import parse_train_args

    root, classes = folder
    images = _images(root)
    (root / "val_subset.csv").write_text("image,labels\n" + "".join(f"{i},circle\n" for i in images[:3]))
    args = parse_train_args(["--data", "folder", "--root", str(root), "--val-split", "val_subset.csv", "--out", "x"])
    train, val, data = datasets_from_args(args)
    assert val.class_names == train.class_names == classes  # not just ['circle']
    assert val.targets[:, classes.index("circle")].tolist() == [1, 1, 1] and data["val_images"] == 3
    (root / "val_subset.csv").write_text("image,labels\n" + f"{images[0]},unicorn\n")
    with pytest.raises(DatasetError, match=r"val_subset\.csv, line 2: unknown class name\(s\) 'unicorn'"):
        datasets_from_args(args)
