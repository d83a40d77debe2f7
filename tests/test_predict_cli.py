import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ram_core.checkpoints import save_checkpoint
from ram_core.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def checkpoint(random_model, tmp_path):
    return save_checkpoint(tmp_path / "tiny.safetensors", random_model, backbone_weights="checkpoint")


def test_predict_json_lines_schema(checkpoint, photo, tmp_path, capsys, small_cfg):
    wide = tmp_path / "wide.png"
    Image.fromarray((np.arange(60 * 300).reshape(60, 300) * 3).astype(np.uint16)).save(wide)  # 16-bit greyscale
    code = main(["predict", str(photo), str(wide), "--checkpoint", str(checkpoint), "--json", "--device", "cpu"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["image"] == str(photo)
    assert set(first["scores"]) == set(small_cfg.class_names)
    assert set(first["global_scores"]) == set(small_cfg.class_names)
    assert len(first["steps"]) == small_cfg.num_steps
    for step in second["steps"]:
        x0, y0, x1, y1 = step["box"]
        assert 0 <= x0 <= x1 <= 300 and 0 <= y0 <= y1 <= 60  # original pixels, not the 128x128 input
        assert set(step["scores"]) == set(small_cfg.class_names)
    assert all(first["scores"][c] >= first["threshold"] for c in first["labels"])


def test_bad_images_are_named_and_the_rest_still_processed(checkpoint, photo, tmp_path, capsys):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello, not a JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(photo.read_bytes()[:300])
    code = main(["predict", str(not_image), str(photo), str(truncated), "--checkpoint", str(checkpoint),
                 "--json", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code != 0
    assert [json.loads(x)["image"] for x in captured.out.strip().splitlines()] == [str(photo)]
    assert "notes.jpg: not an image" in captured.err
    assert "cut.jpg" in captured.err


def test_human_readable_output(checkpoint, photo, capsys):
    assert main(["predict", str(photo), "--checkpoint", str(checkpoint), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "labels:" in out and "step 1: box [" in out


def test_wrong_checkpoint_gives_a_clear_error_exit(tmp_path, photo):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"garbage that is not a checkpoint")
    proc = subprocess.run([sys.executable, "-m", "ram_core", "predict", str(photo), "--checkpoint", str(bad)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr
