"""Load: eight browser sessions upload at once (scripts/load_test.py, lighter: one round); and the race
that the load test found, reproduced without a browser."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.screenshot import CHROMIUM  # noqa: E402


# Streamlit runs each session's script in a thread of its own.  plotly reads pandas out of sys.modules
# (get_module(..., should_load=False)) while validating figure data, so a figure built while another
# session's thread is still importing pandas finds the half-initialised module.
RACE = textwrap.dedent("""
    import sys, threading
    from PIL import Image
    from ram_core.trace import AttentionTrace
    from ram_core.viz import figures   # what the pages import

    trace = AttentionTrace.from_json({
        "image": "x.jpg", "width": 100, "height": 80, "threshold": 0.5,
        "scores": {"a": 0.7, "b": 0.2}, "global_scores": {"a": 0.5, "b": 0.1}, "max_step": {"a": 1, "b": 1},
        "steps": [{"step": 1, "box": [0, 0, 50, 40], "box_norm": [0, 0, 0.5, 0.5], "scores": {"a": 0.7, "b": 0.2},
                   "transform": {"s_x": 0.5, "s_y": 0.5, "t_x": 0, "t_y": 0}}]})
    image = Image.new("RGB", (100, 80))
    start, imported, errors = threading.Barrier(4), threading.Event(), []

    def another_session_imports_pandas():
        start.wait()
        import pandas  # noqa: F401  (as st.dataframe and friends do, lazily)
        imported.set()

    def a_session_draws_its_figure():
        start.wait()
        while not imported.is_set():
            try:
                figures.attention_figure(image, trace)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return

    threads = [threading.Thread(target=another_session_imports_pandas)]
    threads += [threading.Thread(target=a_session_draws_its_figure) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(errors[0] if errors else "ok")
""")


def test_figures_drawn_while_another_session_imports_pandas_do_not_crash():
    proc = subprocess.run([sys.executable, "-c", RACE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "ok", proc.stdout


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
def test_eight_sessions_uploading_at_once_get_their_own_results_from_one_model():
    pytest.importorskip("psutil")
    from scripts.load_test import run_load_test

    report = run_load_test(sessions=8, rounds=1, model="tiny", timeout_s=75, log=lambda *_: None)
    assert report.uploads == 8
    assert report.model_loads == 1  # one model in memory, shared by all sessions
    assert report.http_requests > 8 and report.websocket_frames_sent >= 8
    # bounded: eight sessions with their results add far less than a second copy of torch and a model
    assert report.rss_peak_mb - report.rss_start_mb < 1200, report
    assert not report.problems, report.problems
