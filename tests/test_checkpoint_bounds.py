"""Hostile checkpoints: every config field bounded before anything is allocated, the metadata's size and
nesting bounded, only known tensor types, no NaN or infinite weights, and no file named by a checkpoint
ever opened.  Each case is a distinct crafted file that must be refused with a CheckpointError whose
message states the problem, both by the library and by `python -m ram_core info` / `predict` (no
traceback).  RELIABILITY.md counts them."""

from __future__ import annotations

import dataclasses
import json
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ram_core.checkpoints import (META_KEY, model_from_bytes, read_metadata_bytes, save_checkpoint)
from ram_core.cli import main
from ram_core.config import (CONFIG_BOUNDS, LOSS_BOUNDS, LossConfig, RAMConfig, check_config_dict)
from ram_core.errors import CheckpointError
from ram_core.presets import preset_config

CLASSES = ["person", "cat", "dog"]


# --------------------------------------------------------------------------------------------------
# A small head-only checkpoint, and a writer for safetensors files with any header


def _good_blob() -> bytes:
    from ram_core.backbones import RANDOM_INIT
    from ram_core.model import build_model

    cfg = RAMConfig(class_names=list(CLASSES), input_size=96, num_steps=3, region_size=3, embed_dim=16,
                    hidden_size=16)
    torch.manual_seed(0)
    model = build_model(cfg, RANDOM_INIT).eval()
    with tempfile.TemporaryDirectory() as d:
        path = save_checkpoint(Path(d) / "m.safetensors", model, backbone_weights="package",
                               provenance={"data": "test"})
        return path.read_bytes()


GOOD = _good_blob()


def split_file(blob: bytes) -> tuple[dict, dict, dict[str, bytes]]:
    """(tensor entries, metadata dict, raw bytes per tensor)."""
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = json.loads(header.pop("__metadata__")[META_KEY])
    body = blob[8 + n:]
    raw = {k: body[e["data_offsets"][0]:e["data_offsets"][1]] for k, e in header.items()}
    return header, meta, raw


def join_file(entries: dict, raw: dict[str, bytes], meta_text: str | None, extra_header: dict | None = None) -> bytes:
    header, body, offset = {}, b"", 0
    for k, e in entries.items():
        data = raw[k]
        header[k] = {"dtype": e["dtype"], "shape": e["shape"], "data_offsets": [offset, offset + len(data)]}
        body += data
        offset += len(data)
    if meta_text is not None:
        header["__metadata__"] = {META_KEY: meta_text}
    header.update(extra_header or {})
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def with_config(**changes) -> bytes:
    entries, meta, raw = split_file(GOOD)
    meta["config"].update(changes)
    return join_file(entries, raw, json.dumps(meta))


def with_loss(**changes) -> bytes:
    entries, meta, raw = split_file(GOOD)
    meta["config"]["loss"].update(changes)
    return join_file(entries, raw, json.dumps(meta))


def with_meta(edit) -> bytes:
    entries, meta, raw = split_file(GOOD)
    edit(meta)
    return join_file(entries, raw, json.dumps(meta))


def first_weight(entries: dict) -> str:
    return next(k for k, e in entries.items() if e["dtype"] == "F32" and len(e["shape"]) == 2)


def with_tensor(kind: str) -> bytes:
    entries, meta, raw = split_file(GOOD)
    key = first_weight(entries)
    values = np.frombuffer(raw[key], np.float32).copy()
    if kind == "nan":
        values[3] = np.nan
        raw[key] = values.tobytes()
    elif kind == "inf":
        values[-1] = -np.inf
        raw[key] = values.tobytes()
    elif kind == "bool":
        entries[key]["dtype"] = "BOOL"
        raw[key] = (values > 0).astype(np.uint8).tobytes()
    elif kind == "int8":
        entries[key]["dtype"] = "I8"
        raw[key] = values.astype(np.int8).tobytes()
    elif kind == "int64":
        entries[key]["dtype"] = "I64"
        raw[key] = values.astype(np.int64).tobytes()
    elif kind == "negative_shape":
        entries[key]["shape"] = [-1, len(values)]
    elif kind == "shape_lies":  # the header claims more data than the offsets give
        entries[key]["shape"] = [entries[key]["shape"][0] * 4, entries[key]["shape"][1]]
        blob = join_file(entries, raw, json.dumps(meta))
        return blob
    elif kind == "stray":
        entries["optimizer.state"] = {"dtype": "F32", "shape": [2]}
        raw["optimizer.state"] = np.zeros(2, np.float32).tobytes()
    elif kind == "too_many":
        for i in range(10_001):
            entries[f"head.junk{i}"] = {"dtype": "F32", "shape": [0]}
            raw[f"head.junk{i}"] = b""
    elif kind == "wider":  # a config-consistent lie: the tensor is bigger than the config's head
        entries[key]["shape"] = [entries[key]["shape"][0], entries[key]["shape"][1] * 2]
        raw[key] = np.zeros(entries[key]["shape"], np.float32).tobytes()
    else:
        raise ValueError(kind)
    return join_file(entries, raw, json.dumps(meta))


def deep(levels: int):
    value: object = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


# name -> (file bytes, part of the message)
HOSTILE: dict[str, tuple[callable, str]] = {
    # config fields out of bounds (read before anything is built)
    "steps_1e9": (lambda: with_config(num_steps=10**9), "num_steps must be between 1 and 64"),
    "steps_negative": (lambda: with_config(num_steps=-3), "num_steps must be between"),
    "steps_text": (lambda: with_config(num_steps="5"), "num_steps must be a whole number"),
    "steps_fraction": (lambda: with_config(num_steps=2.5), "num_steps must be a whole number"),
    "steps_bool": (lambda: with_config(num_steps=True), "num_steps must be a whole number"),
    "region_huge": (lambda: with_config(region_size=10**6), "region_size must be between"),
    "region_zero": (lambda: with_config(region_size=0), "region_size must be between"),
    "input_huge": (lambda: with_config(input_size=10**6), "input_size must be between"),
    "input_tiny": (lambda: with_config(input_size=8), "input_size must be between"),
    "hidden_huge": (lambda: with_config(hidden_size=10**7), "hidden_size must be between"),
    "embed_zero": (lambda: with_config(embed_dim=0), "embed_dim must be between"),
    "z_negative": (lambda: with_config(z_size=-1), "z_size must be between"),
    "widths_product": (lambda: with_config(embed_dim=8192, hidden_size=8192), "parameters"),
    "channels_huge": (lambda: with_config(region_channels=10**5), "region_channels must be between"),
    "dropout_above_1": (lambda: with_config(dropout=1.5), "dropout must be"),
    "dropout_nan": (lambda: with_config(dropout=float("nan")), "dropout must be a finite number"),
    "mean_nan": (lambda: with_config(mean=[float("nan"), 0.4, 0.4]), "mean values must be finite"),
    "mean_two_values": (lambda: with_config(mean=[0.4, 0.4]), "mean needs 3 numbers"),
    "mean_text": (lambda: with_config(mean="0.5"), "mean needs 3 numbers"),
    "std_zero": (lambda: with_config(std=[0.0, 0.0, 0.0]), "std values must be at least"),
    "std_inf": (lambda: with_config(std=[float("inf"), 1, 1]), "std values must be finite"),
    "sigma_zero": (lambda: with_config(evidence_sigma=0), "evidence_sigma must be above 0"),
    "init_scale_negative": (lambda: with_config(init_scale=-1.0), "init_scale must be above 0"),
    "temperature_zero": (lambda: with_config(csra_temperature=0.0), "csra_temperature must be above"),
    "memory_text": (lambda: with_config(memory="yes"), "memory must be true or false"),
    "head_unknown": (lambda: with_config(head="evil"), "head must be one of"),
    "backbone_path": (lambda: with_config(backbone="../../etc/passwd"), "unknown backbone"),
    "mode_unknown": (lambda: with_config(transform_mode="teleport"), "transform_mode must be one of"),
    "preset_huge": (lambda: with_config(preset="p" * 1000), "preset must be text of at most"),
    "config_list": (lambda: with_meta(lambda m: m.update(config=[1, 2])), "must be a JSON object"),
    "config_unknown_field": (lambda: with_config(shell="rm -rf /"), "unknown config field"),
    # class names
    "classes_empty": (lambda: with_config(class_names=[]), "class_names must be a list of 1 to"),
    "classes_20000": (lambda: with_config(class_names=[f"c{i}" for i in range(20_000)]), "class_names must be a list"),
    "classes_ansi": (lambda: with_config(class_names=["person", "\x1b[2Jcat", "dog"]), "control characters"),
    "classes_newline": (lambda: with_config(class_names=["person", "cat\nerror: fake", "dog"]), "control characters"),
    "classes_long": (lambda: with_config(class_names=["person", "c" * 5000, "dog"]), "class_names[1] must be a name"),
    "classes_number": (lambda: with_config(class_names=["person", 7, "dog"]), "class_names[1] must be a name"),
    "classes_duplicate": (lambda: with_config(class_names=["cat", "cat", "dog"]), "duplicates"),
    # ImageNet prior groups
    "groups_index_1000": (lambda: with_config(imagenet_groups=[[1000], [], []]), "from 0 to 999"),
    "groups_index_negative": (lambda: with_config(imagenet_groups=[[-1], [], []]), "from 0 to 999"),
    "groups_wrong_count": (lambda: with_config(imagenet_groups=[[1], [2]]), "one group per class"),
    "groups_huge": (lambda: with_config(imagenet_groups=[list(range(999)) * 3, [], []]), "at most 1000 indices"),
    "groups_float_index": (lambda: with_config(imagenet_groups=[[1.5], [], []]), "from 0 to 999"),
    # loss section and anchors
    "loss_not_object": (lambda: with_config(loss="bce"), "loss must be a JSON object"),
    "loss_unknown_field": (lambda: with_loss(exec="x"), "unknown loss field"),
    "loss_gamma_inf": (lambda: with_loss(gamma=float("inf")), "loss.gamma must be a finite number"),
    "loss_unknown_kind": (lambda: with_loss(classification="hinge"), "loss.classification must be one of"),
    "anchors_wrong_count": (lambda: with_loss(anchors=[[0, 0]]), "one (t_x, t_y) pair per step"),
    "anchors_huge_value": (lambda: with_loss(anchors=[[0, 0], [1e9, 0], [0, 0]]), "between -2 and 2"),
    "anchors_nan": (lambda: with_loss(anchors=[[0, 0], [float("nan"), 0], [0, 0]]), "between -2 and 2"),
    # metadata: what it names, how big and how deep it is
    "weights_etc_passwd": (lambda: with_meta(lambda m: m.update(backbone_weights="/etc/passwd")),
                           "may only say"),
    "weights_pickle_path": (lambda: with_meta(lambda m: m.update(backbone_weights="/tmp/evil.pth")), "may only say"),
    "weights_number": (lambda: with_meta(lambda m: m.update(backbone_weights=7)), "may only say"),
    "nesting_100000": (lambda: join_file(*_no_meta(), "{\"config\": " + "[" * 100_000 + "]" * 100_000 + "}"),
                       "nests deeper"),
    "nesting_50": (lambda: with_meta(lambda m: m.update(provenance=deep(50))), "nests deeper"),
    "metadata_5mb": (lambda: with_meta(lambda m: m.update(provenance={"note": "x" * 5_000_000})),
                     "more than the"),
    "provenance_list": (lambda: with_meta(lambda m: m.update(provenance=[1, 2])), "'provenance' must be a JSON object"),
    "evaluation_text": (lambda: with_meta(lambda m: m.update(evaluation="great")),
                        "'evaluation' must be a JSON object"),
    "metadata_not_json": (lambda: join_file(*_no_meta(), "{config: nope"), "not valid JSON"),
    "metadata_no_config": (lambda: join_file(*_no_meta(), "{}"), "no config"),
    "header_nesting": (lambda: join_file(*_no_meta(), json.dumps(split_file(GOOD)[1]),
                                         extra_header={"x": deep(200)}), "nests deeper"),
    "thresholds_nan": (lambda: with_meta(lambda m: m.update(class_thresholds={"cat": float("nan")})),
                       "must be a number between 0 and 1"),
    "thresholds_unknown_class": (lambda: with_meta(lambda m: m.update(class_thresholds={"x" * 10_000: 0.5})),
                                 "not one of the model's classes"),
    # tensors
    "weights_nan": (lambda: with_tensor("nan"), "NaN or infinite"),
    "weights_inf": (lambda: with_tensor("inf"), "NaN or infinite"),
    "weights_bool": (lambda: with_tensor("bool"), "element type 'BOOL'"),
    "weights_int8": (lambda: with_tensor("int8"), "element type 'I8'"),
    "weights_int64": (lambda: with_tensor("int64"), "needs floating-point numbers"),
    "shape_negative": (lambda: with_tensor("negative_shape"), "invalid shape"),
    "shape_lies": (lambda: with_tensor("shape_lies"), "does not match its shape"),
    "tensor_stray": (lambda: with_tensor("stray"), "unexpected tensor optimizer.state"),
    "tensors_10001": (lambda: with_tensor("too_many"), "more than 10000"),
    "tensor_wider": (lambda: with_tensor("wider"), "the config needs"),
}


def _no_meta():
    entries, _, raw = split_file(GOOD)
    return entries, raw


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_checkpoint_is_a_checkpoint_error_that_names_the_problem(name):
    make, message = HOSTILE[name]
    blob = make()
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        model_from_bytes(blob, f"{name}.safetensors")
    assert message in str(err.value), str(err.value)[:500]
    assert f"{name}.safetensors" in str(err.value)
    assert len(str(err.value)) < 1000  # no dump of the file's contents
    assert time.perf_counter() - t0 < 20  # refused up front, not after allocating what it asks for


METADATA_PROBLEMS = [n for n in HOSTILE if not n.startswith(("weights_nan", "weights_inf", "weights_bool",
                                                             "weights_int", "tensor_", "shape_", "tensors_"))]


@pytest.mark.parametrize("name", ["steps_1e9", "classes_ansi", "weights_etc_passwd", "nesting_100000",
                                  "groups_index_1000", "metadata_5mb"])
def test_info_refuses_a_hostile_checkpoint_without_a_traceback(name, tmp_path, capsys):
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(HOSTILE[name][0]())
    code = main(["info", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and HOSTILE[name][1] in err and "Traceback" not in err
    assert "\x1b" not in err


def test_metadata_problems_are_found_without_reading_tensors():
    for name in METADATA_PROBLEMS:
        with pytest.raises(CheckpointError):
            read_metadata_bytes(HOSTILE[name][0](), name)


def test_a_good_checkpoint_in_half_precision_still_loads():
    entries, meta, raw = split_file(GOOD)
    for k, e in entries.items():
        if e["dtype"] == "F32":
            e["dtype"] = "F16"
            raw[k] = np.frombuffer(raw[k], np.float32).astype(np.float16).tobytes()
    model, info = model_from_bytes(join_file(entries, raw, json.dumps(meta)), "half.safetensors")
    assert info.config.class_names == CLASSES
    x = torch.zeros(1, 3, 96, 96)
    with torch.inference_mode():
        assert torch.isfinite(model(x).logits).all()


# --------------------------------------------------------------------------------------------------
# The bounds table covers every field


def test_every_config_field_has_a_bound():
    """Fails when a field is added to RAMConfig or LossConfig without an entry in the bounds tables."""
    assert {f.name for f in dataclasses.fields(RAMConfig)} == set(CONFIG_BOUNDS)
    assert {f.name for f in dataclasses.fields(LossConfig)} == set(LOSS_BOUNDS)


@pytest.mark.parametrize("backbone", ["vgg16", "tf_efficientnet_lite0", "resnet101"])
def test_the_paper_preset_and_the_defaults_are_inside_the_bounds(backbone):
    names = [f"class{i}" for i in range(80)]
    check_config_dict(preset_config("paper", names, backbone=backbone).to_dict())
    check_config_dict(RAMConfig(class_names=names, backbone=backbone).to_dict())


def test_the_bundled_checkpoints_are_inside_the_bounds():
    from ram_core.checkpoints import read_metadata

    bundled = sorted((Path(__file__).resolve().parent.parent / "assets").glob("*.safetensors"))
    assert bundled
    for path in bundled:
        assert read_metadata(path).config.class_names


def test_each_bound_refuses_just_outside_and_accepts_its_edges():
    base = RAMConfig(class_names=list(CLASSES)).to_dict()
    for name, bound in CONFIG_BOUNDS.items():
        if bound.kind != "int":
            continue
        for value, ok in ((bound.lo, True), (bound.hi, True), (bound.lo - 1, False), (bound.hi + 1, False)):
            data = dict(base, **{name: int(value)})
            if name == "region_size" and data.get("region_encoder") == "maxpool":
                continue
            if ok:
                try:
                    check_config_dict(data)
                except ValueError as exc:  # only the size of the whole head may refuse an edge
                    assert "parameters" in str(exc), (name, value, exc)
            else:
                with pytest.raises(ValueError, match=name):
                    check_config_dict(data)
