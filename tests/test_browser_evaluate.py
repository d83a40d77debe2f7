"""The Evaluate page in a real browser: Debian's chromium through Playwright, on a live `streamlit run`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CLASSES = ["circle", "square", "triangle"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    from ram_core.backbones import RANDOM_INIT
    from ram_core.checkpoints import save_checkpoint
    from ram_core.config import RAMConfig
    from ram_core.data import make_synthetic_voc
    from ram_core.evaluation import evaluate_to_folder
    from ram_core.inference import Predictor
    from ram_core.model import build_model

    tmp = tmp_path_factory.mktemp("browser_eval")
    make_synthetic_voc(tmp / "scenes", 12, image_size=64, classes=CLASSES, seed=4)
    torch.manual_seed(0)
    model = build_model(RAMConfig(class_names=CLASSES, input_size=64, num_steps=3, region_size=2, embed_dim=16,
                                  hidden_size=16), RANDOM_INIT).eval()
    ckpt = save_checkpoint(tmp / "tiny.safetensors", model, backbone_weights="checkpoint")
    predictor = Predictor.from_checkpoint(ckpt, "cpu")
    evaluate_to_folder(predictor, "synthetic", tmp / "scenes", "trainval", tmp / "evals" / "default_val", workers=0)
    return tmp / "evals", ckpt


def test_evaluate_page_shows_the_per_class_table(evaluations, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    from screenshot import browser_page, save_small_png, serve_app

    evals, ckpt = evaluations
    monkeypatch.setenv("RAM_STUDIO_EVAL_DIR", str(evals))
    monkeypatch.setenv("RAM_STUDIO_CHECKPOINT", str(ckpt))
    with serve_app() as url, browser_page(1400, 1300) as page:
        page.goto(f"{url}/Evaluate", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Evaluate").first.wait_for(timeout=90_000)
        table = page.locator("[data-testid='stDataFrame']").first
        table.wait_for(timeout=90_000)
        page.get_by_text("Per-class results").first.wait_for()
        # the grid draws on a canvas; its accessible copy (headers, cells) follows shortly
        table.locator("[role='gridcell']", has_text="triangle").first.wait_for(state="attached", timeout=30_000)
        headers = table.locator("[role='columnheader']").all_inner_texts()
        assert {"class", "AP", "positives", "precision", "recall", "F1"} <= set(headers)
        cells = table.locator("[role='gridcell']").all_inner_texts()
        assert set(CLASSES) <= set(cells)
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=30_000)
        page.wait_for_timeout(1000)
        save_small_png(page.screenshot(), ROOT / "test-artifacts" / "evaluate.png")
