"""Load test: N browser sessions upload images to the Inspect page at the same moment.

    python scripts/load_test.py                          # 8 sessions, 2 rounds, a tiny random-weights model
    python scripts/load_test.py --sessions 12 --rounds 3 --model default   # the shipped model's architecture
    python scripts/load_test.py --checkpoint runs/voc/best.safetensors --json load.json

Starts `streamlit run app.py` in a process of its own (through `serve`, below, which counts model loads),
opens N pages in Debian's chromium (one browser context per session, so N Streamlit sessions), waits
until every page is ready, then makes all of them upload a different image at once, `--rounds` times.
Each session's result is read off the page (the scores chart's classes and values, the image name in the
attention figure) and compared with what a Predictor on the same checkpoint gives for that image here.

Reports: sessions, uploads, HTTP requests and websocket frames the browsers sent, failures (a missing or
wrong result, a page error, a traceback on the page), how many times the server loaded a model, the
server's resident memory (before any session, after the model is loaded, peak per round) and upload ->
result latencies.  Exit code 1 when any session failed or the model was loaded more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.screenshot import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

MODEL_LOAD_MARK = "RAM_STUDIO_MODEL_LOAD"
SCORES_JS = """() => {
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  const find = k => plots.find(d => d.layout && d.layout.meta && d.layout.meta.kind === k);
  const scores = find('scores'), attention = find('attention');
  if (!scores || !attention) return null;
  return {image: attention.layout.meta.image, classes: scores.data[0].y, values: scores.data[0].x};
}"""


# --------------------------------------------------------------------------------------------------
# The server: streamlit in this process, with model loads counted


def serve(port: int, preimport: list[str]) -> None:
    """Run the app like `streamlit run app.py`, printing a line to stderr each time a model is loaded.
    `preimport`: modules imported before the app starts (to try out a fix for an import race)."""
    import importlib

    import ram_core.inference as inference

    for name in preimport:
        importlib.import_module(name)

    def counted(fn, what: int):
        def wrapper(*args, **kwargs):
            print(f"{MODEL_LOAD_MARK} {fn.__name__} {str(args[what])[:200]}", file=sys.stderr, flush=True)
            return fn(*args, **kwargs)
        return wrapper

    inference.load_checkpoint = counted(inference.load_checkpoint, 0)  # (path, ...)
    inference.model_from_bytes = counted(inference.model_from_bytes, 1)  # (blob, name, ...)
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), "--server.headless=true", f"--server.port={port}",
                "--server.address=127.0.0.1", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none",
                "--client.toolbarMode=minimal"]
    sys.exit(cli.main())


class Server:
    """The app in a subprocess; its log in a file; its memory sampled in a thread."""

    def __init__(self, checkpoint: Path, log_path: Path, timeout: float = 120, preimport: list[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "RAM_STUDIO_CHECKPOINT": str(checkpoint.resolve()), "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.log = open(log_path, "w")
        cmd = [sys.executable, __file__, "serve", "--port", str(self.port)]
        cmd += [f"--preimport={m}" for m in preimport]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with code {self.proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the app did not answer on {self.url} within {timeout:.0f} s")
            time.sleep(0.3)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        """Resident memory of the server and its children, in bytes."""
        import psutil

        try:
            p = psutil.Process(self.proc.pid)
            return p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
        except psutil.Error:
            return 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.rss()))
            self._stop.wait(0.1)

    def peak_since(self, t0: float) -> int:
        return max((rss for t, rss in self.samples if t >= t0), default=0)

    def model_loads(self) -> list[str]:
        self.log.flush()
        return [line.strip() for line in self.log_path.read_text().splitlines() if line.startswith(MODEL_LOAD_MARK)]

    def close(self) -> None:
        self._stop.set()
        self.proc.terminate()  # the process this script started, by its id
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --------------------------------------------------------------------------------------------------
# Inputs and expected results


def make_checkpoint(kind: str, folder: Path) -> Path:
    """'tiny': random weights, input 96, K = 3 (fast); 'default': the shipped model's architecture (VOC
    classes, input 448, K = 5, flatten regions, evidence localizer, ImageNet prior; random head)."""
    import torch

    from ram_core.backbones import PACKAGE_WEIGHTS, RANDOM_INIT
    from ram_core.checkpoints import save_checkpoint
    from ram_core.config import RAMConfig
    from ram_core.data.classes import VOC_CLASSES
    from ram_core.imagenet_prior import groups_for
    from ram_core.model import build_model

    torch.manual_seed(0)
    if kind == "tiny":
        cfg = RAMConfig(class_names=["person", "cat", "motorbike", "dog", "car", "bird"], input_size=96, num_steps=3,
                        region_size=3, embed_dim=16, hidden_size=16, transform_mode="anchored", init_scale=0.3)
        model, weights = build_model(cfg, RANDOM_INIT), "checkpoint"
    else:
        classes = list(VOC_CLASSES)
        cfg = RAMConfig(class_names=classes, region_encoder="flatten", transform_mode="evidence",
                        imagenet_groups=groups_for(classes))
        model, weights = build_model(cfg, PACKAGE_WEIGHTS), None
    return save_checkpoint(folder / f"load_{kind}.safetensors", model.eval(), backbone_weights=weights,
                           provenance={"data": "load test (random head)"})


def make_images(n: int, folder: Path, size: tuple[int, int] = (640, 480)) -> list[Path]:
    """n different photos-like JPEGs: noise, a gradient and coloured blocks in different places."""
    import numpy as np
    from PIL import Image

    paths = []
    for i in range(n):
        rng = np.random.default_rng(1000 + i)
        w, h = size
        arr = rng.normal(110, 40, (h, w, 3))
        arr += np.linspace(0, 80 * (i % 3), w)[None, :, None]
        for _ in range(4):
            x, y = int(rng.integers(0, w - 120)), int(rng.integers(0, h - 120))
            arr[y:y + 120, x:x + 120] = rng.integers(0, 255, 3)
        path = folder / f"session{i:02d}.jpg"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def expected_results(checkpoint: Path, images: list[Path]) -> dict[str, dict[str, float]]:
    """image name -> the top-10 fused scores a Predictor gives (what the scores chart shows)."""
    import torch

    from ram_core.imageio import open_image
    from ram_core.inference import Predictor

    torch.set_num_threads(1)
    predictor = Predictor.from_checkpoint(checkpoint, "cpu")
    out = {}
    for path in images:
        trace = predictor.predict_one(path.name, open_image(path))
        out[path.name] = dict(trace.top(min(10, len(trace.scores))))
    return out


# --------------------------------------------------------------------------------------------------
# Sessions


@dataclass
class SessionResult:
    session: int
    round: int
    image: str
    ok: bool = False
    problem: str = ""
    seconds: float | None = None


@dataclass
class Report:
    sessions: int
    rounds: int
    model: str
    preimport: list[str] = field(default_factory=list)
    uploads: int = 0
    http_requests: int = 0
    websocket_frames_sent: int = 0
    failures: int = 0
    model_loads: int = 0
    rss_start_mb: float = 0.0
    rss_model_loaded_mb: float = 0.0
    rss_peak_per_round_mb: list[float] = field(default_factory=list)
    rss_peak_mb: float = 0.0
    rss_end_mb: float = 0.0
    latency_p50_s: float | None = None
    latency_max_s: float | None = None
    wall_seconds: float = 0.0
    machine: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def machine_info() -> dict:
    import torch

    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


async def run_sessions(url: str, n: int, rounds: int, images: list[Path], expected: dict, server: Server,
                       report: Report, timeout_ms: int) -> list[SessionResult]:
    from playwright.async_api import async_playwright

    results: list[SessionResult] = []
    counters = {"requests": 0, "frames": 0}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = []
            for i in range(n):
                context = await browser.new_context(viewport={"width": 1280, "height": 1000})
                page = await context.new_page()
                page.on("request", lambda _r: counters.__setitem__("requests", counters["requests"] + 1))
                page.on("websocket", lambda ws: ws.on(
                    "framesent", lambda _f: counters.__setitem__("frames", counters["frames"] + 1)))
                errors: list[str] = []
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                pages.append((page, errors))

            async def open_page(page):
                await page.goto(f"{url}/Inspect", wait_until="domcontentloaded")
                await page.get_by_role("heading", name="Inspect").first.wait_for(timeout=timeout_ms)
                await page.locator("[data-testid='stFileUploaderDropzoneInput']").first.wait_for(
                    state="attached", timeout=timeout_ms)

            # every session opens the page at once: the first ones make the server load the model
            await asyncio.gather(*(open_page(p) for p, _ in pages))
            report.rss_model_loaded_mb = server.rss() / 2**20

            for r in range(rounds):
                t_round = time.monotonic()

                async def one(i: int, page, errors) -> SessionResult:
                    image = images[(i + r * n) % len(images)]
                    res = SessionResult(i, r, image.name)
                    t0 = time.monotonic()
                    try:
                        if r > 0:  # remove the last round's upload first (the uploader takes several files)
                            delete = page.locator("[data-testid='stFileUploader'] button[aria-label^='Remove ']")
                            while await delete.count():
                                await delete.first.click()
                            await page.wait_for_function(
                                "() => document.querySelectorAll('.js-plotly-plot').length === 0"
                                " && document.querySelector(\"[data-testid='stException']\") === null",
                                timeout=timeout_ms)
                        t0 = time.monotonic()
                        await page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(image))
                        # the result for this image is drawn, or the page shows an exception
                        await page.wait_for_function(
                            "(name) => { const p = Array.from(document.querySelectorAll('.js-plotly-plot'));"
                            " const a = p.find(d => d.layout && d.layout.meta && d.layout.meta.kind === 'attention');"
                            " const s = p.find(d => d.layout && d.layout.meta && d.layout.meta.kind === 'scores');"
                            " return (a && s && a.layout.meta.image === name)"
                            "   || document.querySelector(\"[data-testid='stException']\") !== null; }",
                            arg=image.name, timeout=timeout_ms)
                        res.seconds = round(time.monotonic() - t0, 3)
                        exception = page.locator("[data-testid='stException']")
                        shown = await page.evaluate(SCORES_JS)
                        want = expected[image.name]
                        got = dict(zip(shown["classes"], shown["values"])) if shown else {}
                        if await exception.count():
                            text = " ".join((await exception.first.inner_text()).split())
                            res.problem = f"exception on the page: {text[:300]}"
                        elif shown is None or shown["image"] != image.name:
                            res.problem = f"no result for {image.name}"
                        elif set(got) != set(want) or any(abs(got[c] - want[c]) > 1e-3 for c in want):
                            res.problem = f"wrong scores for {image.name}: {got} != {want}"
                        elif await page.get_by_text("Traceback").count():
                            res.problem = "a traceback on the page"
                        elif errors:
                            res.problem = f"page error: {errors[0]}"
                        else:
                            res.ok = True
                    except Exception as exc:  # noqa: BLE001 - a session's failure is a result
                        res.problem = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    return res

                round_results = await asyncio.gather(*(one(i, p, e) for i, (p, e) in enumerate(pages)))
                results += round_results
                report.rss_peak_per_round_mb.append(round(server.peak_since(t_round) / 2**20, 1))
        finally:
            await browser.close()
    report.http_requests = counters["requests"]
    report.websocket_frames_sent = counters["frames"]
    return results


def run_load_test(sessions: int = 8, rounds: int = 2, checkpoint: Path | None = None, model: str = "tiny",
                  timeout_s: float = 90, preimport: list[str] = (), log=print) -> Report:
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ram_load_") as tmp:
        tmp = Path(tmp)
        if checkpoint is None:
            checkpoint = make_checkpoint(model, tmp)
        images = make_images(sessions * rounds, tmp)
        expected = expected_results(checkpoint, images)
        distinct = min((max(abs(expected[a.name][c] - expected[b.name].get(c, -1)) for c in expected[a.name])
                        for a in images for b in images if a != b), default=1.0)
        if distinct < 2e-3:
            log(f"warning: two images have nearly the same scores (max difference {distinct:.4f})")
        report = Report(sessions, rounds, str(checkpoint if model == "file" else model), list(preimport),
                        machine=machine_info())
        server = Server(checkpoint, tmp / "server.log", preimport=preimport)
        try:
            time.sleep(0.5)
            report.rss_start_mb = round(server.rss() / 2**20, 1)
            t0 = time.monotonic()
            results = asyncio.run(run_sessions(server.url, sessions, rounds, images, expected, server, report,
                                               int(timeout_s * 1000)))
            report.rss_peak_mb = round(server.peak_since(t0) / 2**20, 1)
            report.rss_end_mb = round(server.rss() / 2**20, 1)
            report.model_loads = len(server.model_loads())
        finally:
            server.close()
    report.rss_model_loaded_mb = round(report.rss_model_loaded_mb, 1)
    report.uploads = len(results)
    bad = [r for r in results if not r.ok]
    report.failures = len(bad)
    report.problems = [f"session {r.session} round {r.round}: {r.problem}" for r in bad]
    times = [r.seconds for r in results if r.seconds is not None]
    if times:
        report.latency_p50_s = round(statistics.median(times), 2)
        report.latency_max_s = round(max(times), 2)
    report.wall_seconds = round(time.monotonic() - t_start, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        ap = argparse.ArgumentParser(prog="load_test.py serve")
        ap.add_argument("--port", type=int, required=True)
        ap.add_argument("--preimport", action="append", default=[])
        a = ap.parse_args(argv[1:])
        serve(a.port, a.preimport)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2, help="uploads per session, all sessions at once each time")
    ap.add_argument("--model", choices=["tiny", "default"], default="tiny",
                    help="the generated checkpoint's architecture (ignored with --checkpoint)")
    ap.add_argument("--checkpoint", type=Path, help="use this checkpoint instead of a generated one")
    ap.add_argument("--timeout", type=float, default=90, help="seconds a session may wait for its result")
    ap.add_argument("--json", type=Path, help="write the report here as JSON")
    ap.add_argument("--preimport", action="append", default=[], metavar="MODULE",
                    help="import MODULE in the server before the app starts (e.g. pandas, to try out the fix for "
                         "the lazy-import race); repeatable")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    report = run_load_test(args.sessions, args.rounds, args.checkpoint, "file" if args.checkpoint else args.model,
                           args.timeout, args.preimport)
    print(f"sessions {report.sessions} x rounds {report.rounds} = {report.uploads} uploads "
          f"({report.http_requests} HTTP requests, {report.websocket_frames_sent} websocket frames sent)")
    print(f"failures {report.failures}; model loaded {report.model_loads} time(s)")
    print(f"server memory: {report.rss_start_mb:.0f} MB at start, {report.rss_model_loaded_mb:.0f} MB with the "
          f"model, peak {report.rss_peak_mb:.0f} MB (per round: {', '.join(f'{m:.0f}' for m in report.rss_peak_per_round_mb)}), "
          f"{report.rss_end_mb:.0f} MB at the end")
    if report.latency_p50_s is not None:
        print(f"upload -> result: median {report.latency_p50_s:.1f} s, max {report.latency_max_s:.1f} s; "
              f"wall {report.wall_seconds:.0f} s on {report.machine['cpu']} ({report.machine['cores']} cores)")
    for problem in report.problems:
        print(f"  {problem}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    return 0 if report.failures == 0 and report.model_loads == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
