"""Served mode in a real browser: `streamlit run app.py` with RAM_STUDIO_ROOTS set, Debian's chromium
through Playwright.  A visitor typing `/` or a folder outside the roots into the sidebar's checkpoint
folders, or /etc as the Evaluate page's dataset root, sees a refusal and no traceback, and the page says
it is served."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.screenshot import CHROMIUM, browser_page, serve_app
from test_app_pages import tiny_checkpoint

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"),
]

REFUSED = "not inside the folders this server lets you read"


def test_a_visitor_cannot_list_or_read_outside_the_roots(tmp_path, monkeypatch):
    for name in ("data", "out", "secret"):
        (tmp_path / name).mkdir()
    checkpoint = tiny_checkpoint(tmp_path / "data" / "tiny.safetensors", num_steps=2)
    (tmp_path / "secret" / "stolen.safetensors").write_bytes(checkpoint.read_bytes())
    monkeypatch.setenv("RAM_STUDIO_ROOTS", f"read={tmp_path / 'data'};write={tmp_path / 'out'}")
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "w") as log, serve_app(checkpoint, log=log) as url, browser_page(1400, 1000) as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url, wait_until="networkidle")
        page.get_by_text("Served mode").first.wait_for(timeout=60_000)
        folders = page.locator('input[aria-label="Checkpoint folders"]')
        folders.fill(f"/, {tmp_path / 'secret'}")
        folders.press("Enter")
        page.get_by_text(REFUSED).first.wait_for(timeout=60_000)
        assert page.get_by_text(REFUSED).count() == 2
        page.wait_for_timeout(1000)
        assert page.get_by_text("stolen").count() == 0

        page.goto(f"{url}/Evaluate", wait_until="networkidle")
        page.get_by_text("Run a new evaluation").first.wait_for(timeout=60_000)
        root = page.locator('input[aria-label="Dataset root"]')
        if not root.is_visible():
            page.get_by_text("Run a new evaluation").first.click()
        root.fill("/etc")
        page.get_by_role("button", name="Run evaluation").click()
        page.get_by_text(REFUSED).first.wait_for(timeout=60_000)
        assert page.get_by_text("Traceback").count() == 0
    assert not errors, errors
    assert "Traceback" not in log_path.read_text()
