"""ONNX export: the exported graph gives onnxruntime the same probabilities as PyTorch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ram_core.checkpoints import save_checkpoint
from ram_core.cli import main
from ram_core.imageio import open_image
from ram_core.inference import Predictor, preprocess

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from ram_core.onnx_export import OUTPUT_NAMES, ExportError, export_onnx, onnx_session  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "assets" / "samples").glob("*.jpg"))


def _onnx_probabilities(path, images: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip(OUTPUT_NAMES, onnx_session(path).run(None, {"images": images})))


def test_default_model_on_the_sample_photos_matches_pytorch(tmp_path):
    """The shipped model (backbone + head) on the bundled photos, batch 3 and batch 1 (dynamic batch)."""
    predictor = Predictor.from_checkpoint(None, "cpu")
    path = export_onnx(predictor.model, tmp_path / "default.onnx")
    images = torch.stack([preprocess(open_image(p), predictor.cfg) for p in SAMPLES])
    expected = predictor.run_tensors(images)
    cfg = predictor.cfg
    got = _onnx_probabilities(path, images.numpy())
    from ram_core.model import probabilities

    assert np.abs(got["scores"] - probabilities(expected.logits, cfg).numpy()).max() <= 1e-4
    assert np.abs(got["global_scores"] - probabilities(expected.global_logits, cfg).numpy()).max() <= 1e-4
    assert got["step_scores"].shape == (3, cfg.num_steps, cfg.num_classes)
    assert np.abs(got["step_scores"] - probabilities(expected.step_logits, cfg).numpy()).max() <= 1e-4
    assert np.abs(got["transforms"] - expected.transforms.numpy()).max() <= 1e-4
    one = _onnx_probabilities(path, images[1:2].numpy())
    assert np.abs(one["scores"] - got["scores"][1:2]).max() <= 1e-4
    # the cat photo is a cat to both
    cat = [p.stem for p in SAMPLES].index("cat")
    assert got["scores"][cat, cfg.class_names.index("cat")] > 0.5
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["ram_studio.class_names"]) == cfg.class_names
    assert int(meta["ram_studio.input_size"]) == cfg.input_size


@pytest.mark.parametrize("encoder", ["maxpool", "pool"])
def test_paper_model_exports_through_the_cli(encoder, tmp_path, photo, capsys):
    """The paper's head (linear localizer, softmax scores) with another region encoder, via `export`."""
    from ram_core.backbones import RANDOM_INIT
    from ram_core.config import RAMConfig
    from ram_core.model import build_model, probabilities

    cfg = RAMConfig.paper(["circle", "square", "triangle"], input_size=128).replace(
        region_encoder=encoder, region_size=4, embed_dim=16, hidden_size=16)
    torch.manual_seed(0)
    model = build_model(cfg, RANDOM_INIT).eval()
    ckpt = save_checkpoint(tmp_path / "paper.safetensors", model, backbone_weights="checkpoint")
    out = tmp_path / "sub" / "paper.onnx"
    assert main(["export", str(ckpt), "--onnx", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    images = torch.stack([preprocess(open_image(photo), cfg), preprocess(open_image(photo).rotate(90), cfg)])
    with torch.no_grad():
        expected = model(images)
    got = _onnx_probabilities(out, images.numpy())
    assert np.abs(got["scores"] - probabilities(expected.logits, cfg).numpy()).max() <= 1e-4
    assert np.abs(got["transforms"] - expected.transforms.numpy()).max() <= 1e-4


def test_export_without_onnx_says_what_to_install(monkeypatch, random_model, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ExportError, match="pip install"):
        export_onnx(random_model, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("head", ["baseline", "csra"])
def test_heads_without_steps_export_with_empty_step_outputs(head, tmp_path):
    from ram_core.backbones import RANDOM_INIT
    from ram_core.config import RAMConfig
    from ram_core.model import build_model, probabilities

    cfg = RAMConfig(class_names=["a", "b", "c"], input_size=64, num_steps=2, region_size=2, embed_dim=8,
                    hidden_size=8, head=head)
    torch.manual_seed(0)
    model = build_model(cfg, RANDOM_INIT).eval()
    x = torch.randn(2, 3, 64, 64)
    got = _onnx_probabilities(export_onnx(model, tmp_path / "m.onnx"), x.numpy())
    with torch.no_grad():
        expected = probabilities(model(x).logits, cfg).numpy()
    assert np.abs(got["scores"] - expected).max() <= 1e-4
    assert got["step_scores"].shape == (2, 0, 3) and got["transforms"].shape == (2, 0, 4)
