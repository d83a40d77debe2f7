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


PROBE_JS = """() => {
  const fig = Array.from(document.querySelectorAll('.js-plotly-plot'))
                   .find(d => d.layout && d.layout.meta && d.layout.meta.kind === 'probe');
  if (!fig) return null;
  return {probes: fig.layout.meta.probes, names: fig.data.map(t => t.name).filter(n => /^Probe/.test(n)),
          tags: (fig.layout.annotations || []).map(a => a.text).filter(t => /^<b>P[0-9]/.test(t))};
}"""


def test_dragging_a_rectangle_on_the_photo_probes_it(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "tiny.safetensors", num_steps=3)
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "w") as log, serve_app(checkpoint, log=log) as url, browser_page(1400, 1100) as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        assert open_inspect(page, url, SAMPLE) is not None, log_path.read_text()
        assert page.evaluate(PROBE_JS) == {"probes": 0, "names": [], "tags": []}
        index = page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                              ".findIndex(d => d.layout && d.layout.meta && d.layout.meta.kind === 'probe')")
        plot = page.locator(".js-plotly-plot").nth(index)
        plot.scroll_into_view_if_needed()
        drag = plot.locator("rect.nsewdrag").first
        box = drag.bounding_box()
        # the photo fills the plot's width or height: drag over its upper-left part
        x0, y0 = box["x"] + 0.15 * box["width"], box["y"] + 0.15 * box["height"]
        x1, y1 = box["x"] + 0.5 * box["width"], box["y"] + 0.6 * box["height"]
        page.mouse.move(x0, y0)
        page.mouse.down()
        for t in (0.25, 0.5, 0.75, 1.0):
            page.mouse.move(x0 + t * (x1 - x0), y0 + t * (y1 - y0))
        page.mouse.up()
        page.wait_for_function(
            "() => { const f = Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".find(d => d.layout && d.layout.meta && d.layout.meta.kind === 'probe');"
            " return f && f.layout.meta.probes === 1; }", timeout=60_000)
        page.wait_for_timeout(1500)
        report = page.evaluate(PROBE_JS)
        # the table beside the photo (a canvas grid: its cells are in the page, not visible as text)
        page.get_by_text("Probe 1").first.wait_for(state="attached", timeout=10_000)
        ARTIFACTS.mkdir(exist_ok=True)
        index = page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                              ".findIndex(d => d.layout && d.layout.meta && d.layout.meta.kind === 'probe')")
        page.locator(".js-plotly-plot").nth(index).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "inspect_probe.png"))
        assert page.get_by_text("Traceback").count() == 0
    assert report["names"] == ["Probe 1"] and len(report["tags"]) == 1
    assert not errors, errors
