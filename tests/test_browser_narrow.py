"""An 820 px wide window with the sidebar open: the metrics and the sample pills are shown whole, not
cut off (they wrap onto another line instead).  Debian's chromium through Playwright."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

# Elements whose text is cut: an ellipsis (scrollWidth beyond the box) or a box reaching past its
# block's right edge (a row of pills or metrics that does not wrap).
CUT_JS = """() => {
  const cut = [];
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  const right = main.getBoundingClientRect().right;
  for (const el of document.querySelectorAll('[data-testid="stMetricValue"], [data-testid="stMetricLabel"]')) {
    const inner = el.querySelector('div, p') || el;
    if (inner.scrollWidth > inner.clientWidth + 1 || el.getBoundingClientRect().right > right + 1)
      cut.push('metric: ' + el.innerText);
  }
  for (const b of document.querySelectorAll('[data-testid="stButtonGroup"] button')) {
    const box = b.getBoundingClientRect();
    const group = b.closest('[data-testid="stButtonGroup"]').getBoundingClientRect();
    if (box.right > group.right + 1 || box.right > right + 1 || b.scrollWidth > b.clientWidth + 1)
      cut.push('pill: ' + b.innerText);
  }
  return {cut: cut, metrics: document.querySelectorAll('[data-testid="stMetricValue"]').length,
          pills: document.querySelectorAll('[data-testid="stButtonGroup"] button').length,
          sidebar: (() => { const s = document.querySelector('[data-testid="stSidebar"]');
                            if (!s) return 0; const r = s.getBoundingClientRect();
                            return r.left >= 0 ? r.width : 0; })()};
}"""


def test_inspect_at_820_px_with_the_sidebar_open_cuts_nothing(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from screenshot import browser_page, open_inspect, serve_app
    from test_app_pages import SAMPLE, tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "tiny.safetensors")
    with serve_app(str(ckpt)) as url, browser_page(820, 1000) as page:
        open_inspect(page, url, SAMPLE)
        report = page.evaluate(CUT_JS)
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "test-artifacts" / "inspect_820px.png"), full_page=True)
    assert report["sidebar"] >= 200, report  # the sidebar is open
    assert report["metrics"] == 5 and report["pills"] >= 3
    assert report["cut"] == [], report
