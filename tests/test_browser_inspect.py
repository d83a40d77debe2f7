"""The Inspect page in a real browser: `streamlit run app.py` on a free port, Debian's chromium through
Playwright, upload a photo, wait for the chart, count the boxes, save a screenshot to test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.screenshot import CHROMIUM, browser_page, open_inspect, serve_app
from test_app_pages import SAMPLE, tiny_checkpoint

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"),
]


def test_inspect_page_draws_one_box_per_step_in_chromium(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "tiny.safetensors", num_steps=3)
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "w") as log, serve_app(checkpoint, log=log) as url, browser_page(1400, 1500) as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        report = open_inspect(page, url, SAMPLE)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "inspect.png"))
        assert page.get_by_text("Traceback").count() == 0
    assert report is not None, log_path.read_text()
    assert report["steps"] == 3
    assert report["boxes"] == 3  # the figure's data: one rectangle per step
    assert report["drawn"] >= 3  # and plotly drew them in the SVG
    assert report["frames"] == 5  # global, steps 1..3, all: the slider and play button's frames
    assert "trajectory" in report["kinds"]
    assert not errors, errors
    assert (ARTIFACTS / "inspect.png").stat().st_size > 10_000
