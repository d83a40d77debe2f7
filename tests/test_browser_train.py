"""The Train page in a real browser: one short run from the form to the end, its curves drawn live,
and the new checkpoint in the sidebar's model picker.  Saves test-artifacts/train.png."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
TINY = "--region-size 2 --hidden-size 8 --embed-dim 8 --workers 0 --no-flip --device cpu"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def _set(page, label: str, value: str) -> None:
    """Type into a Streamlit input and commit it (Enter), then let the rerun finish."""
    box = page.get_by_label(label, exact=True).first
    box.fill(value)
    box.press("Enter")
    page.wait_for_timeout(600)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')",
                           timeout=60_000)


def test_a_short_run_trains_to_the_end_with_curves_and_its_checkpoint_in_the_picker(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    from screenshot import browser_page, save_small_png, serve_app

    from ram_core.data.synthetic import make_synthetic_folder
    from ram_core.jobs import ACTIVE, JobQueue

    photos, _ = make_synthetic_folder(tmp_path / "photos", 24, image_size=48, seed=8)
    monkeypatch.setenv("RAM_STUDIO_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("RAM_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RAM_STUDIO_CHECKPOINT", str(tmp_path / "no_default.safetensors"))
    queue = JobQueue(tmp_path / "jobs", tmp_path / "cache")
    try:
        with serve_app() as url, browser_page(1400, 1800) as page:
            page.goto(f"{url}/Train", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Train").first.wait_for(timeout=90_000)
            _set(page, "Dataset folder", str(photos))
            page.get_by_text("Training: 19 photos").first.wait_for(timeout=60_000)  # the preview
            for label, value in (("Epochs", "3"), ("Input size (pixels)", "64"), ("Attention steps K", "2"),
                                 ("Batch size", "8"), ("More `train` options", TINY), ("Run name", "browser-run")):
                _set(page, label, value)
            page.get_by_role("button", name="Start training").click()
            # the job runs in its own process; the page follows it and redraws when it ends
            page.get_by_text("Finished and stopped runs").first.wait_for(timeout=180_000)
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                ".some(d => d.layout && d.layout.meta && d.layout.meta.kind === 'train_curves' && d.layout.meta.epochs === 3)",
                timeout=60_000)
            job = queue.jobs()[0]
            assert job.state == "finished", job.log_tail()
            drawn = page.evaluate(
                "() => { const d = Array.from(document.querySelectorAll('.js-plotly-plot'))"
                ".find(d => d.layout.meta && d.layout.meta.kind === 'train_curves');"
                " return d.data.map(t => [t.name, t.y.length]); }")
            assert ["total", 3] in drawn and ["mAP, all classes", 3] in drawn
            page.get_by_role("button", name="Open in Inspect").first.wait_for()
            page.wait_for_timeout(1000)
            save_small_png(page.screenshot(full_page=False), ROOT / "test-artifacts" / "train.png")
            # the model picker lists the new checkpoint, with its validation mAP
            page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
            options = page.locator("[role='option']").all_inner_texts()
            summary = job.status["summary"]
            assert any(job.id in o and f"best.safetensors · mAP {summary['mAP']:.1f}" in o for o in options), options
    finally:
        for job in queue.jobs():
            if job.state in ACTIVE and job.status.get("pid"):
                try:
                    os.killpg(int(job.status["pid"]), signal.SIGKILL)
                except ProcessLookupError:
                    pass
