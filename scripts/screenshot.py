"""Screenshot the Inspect page on a sample photo, as a user sees it (for the README).

    python scripts/screenshot.py                      # the default model, cat.jpg -> docs/inspect.png
    python scripts/screenshot.py --checkpoint runs/voc/best.safetensors --sample astronaut.jpg

Starts `streamlit run app.py` on a free local port, opens the Inspect page in Debian's chromium
through Playwright, uploads the photo, waits for the figures, and saves a PNG small enough to keep
in the repository (palette-quantised).  Run it again whenever the page changes.

`serve_app` and `open_inspect` are also used by tests/test_browser_inspect.py.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(checkpoint: str | None = None, port: int | None = None, timeout: float = 90, log=None):
    """`streamlit run app.py` on 127.0.0.1:port (a free one by default); yields the base URL."""
    port = port or free_port()
    env = dict(os.environ)
    if checkpoint:
        env["RAM_STUDIO_CHECKPOINT"] = str(Path(checkpoint).resolve())
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless=true",
           f"--server.port={port}", "--server.address=127.0.0.1", "--browser.gatherUsageStats=false",
           "--server.fileWatcherType=none", "--theme.base=light", "--client.toolbarMode=minimal"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 1000):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
            yield page
        finally:
            browser.close()


# The attention figure's plotly div and its drawn boxes: traces named "Step k" (k >= 1) with a rectangle.
ATTENTION_BOXES_JS = """() => {
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  const fig = plots.find(d => d.layout && d.layout.meta && d.layout.meta.kind === 'attention');
  if (!fig) return null;
  const boxes = fig.data.filter(t => /^Step [1-9]/.test(t.name) && t.x && t.x.length === 5 && t.x[0] !== null);
  const drawn = Array.from(fig.querySelectorAll('g.scatterlayer g.trace path.js-line'))
                     .filter(p => (p.getAttribute('d') || '').length > 0).length;
  const frames = (fig._transitionData || {})._frames || [];
  return {steps: fig.layout.meta.steps, boxes: boxes.length, drawn: drawn, frames: frames.length,
          kinds: plots.map(d => d.layout && d.layout.meta ? d.layout.meta.kind : null)};
}"""


def open_inspect(page, url: str, image: Path, timeout_ms: int = 90_000) -> dict:
    """Open the Inspect page, upload `image`, wait until the attention figure and the trajectory chart
    are drawn; returns what ATTENTION_BOXES_JS reports."""
    page.goto(f"{url}/Inspect", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Inspect").first.wait_for(timeout=timeout_ms)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(image))
    page.wait_for_function(
        "() => { const k = Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".map(d => d.layout && d.layout.meta && d.layout.meta.kind);"
        " return k.includes('attention') && k.includes('trajectory'); }",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(1500)  # let plotly finish drawing and the images load
    return page.evaluate(ATTENTION_BOXES_JS)


def save_small_png(png: bytes, out: Path, max_width: int = 1400, colors: int = 256) -> int:
    """Downscale to max_width and quantise to a palette: a readable page screenshot in ~200 KB."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.width > max_width:
        img = img.resize((max_width, round(img.height * max_width / img.width)), Image.LANCZOS)
    small = img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    out.parent.mkdir(parents=True, exist_ok=True)
    small.save(out, "PNG", optimize=True)
    return out.stat().st_size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint",
                    help="checkpoint used as the default model (default: assets/ram_default.safetensors)")
    ap.add_argument("--sample", default="cat.jpg", help="a photo in assets/samples/ (or any image path)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "inspect.png"))
    ap.add_argument("--width", type=int, default=1400, help="browser viewport width")
    ap.add_argument("--height", type=int, default=1780, help="height of the page captured (from the top)")
    args = ap.parse_args(argv)
    image = Path(args.sample)
    if not image.is_file():
        image = ROOT / "assets" / "samples" / args.sample
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 1
    with serve_app(args.checkpoint) as url, browser_page(args.width, args.height) as page:
        report = open_inspect(page, url, image)
        if not report or report["boxes"] != report["steps"]:
            print(f"error: expected one box per step, page reports {report}", file=sys.stderr)
            return 1
        png = page.screenshot(full_page=False)
    size = save_small_png(png, Path(args.out), max_width=args.width)
    print(f"{args.out}: {size / 1024:.0f} KB ({report['boxes']} boxes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
