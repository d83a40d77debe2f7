"""RAM Studio as a user installs it: the wheel in a fresh virtual environment, used from another folder.

The virtual environment sees the system's site-packages (torch and the rest are not installed again);
the wheel itself goes in without its dependencies, from the file, so nothing is downloaded.  What
must come from the wheel (ram_core, its subpackages, the default model, the samples, the app) does:
the commands run in a folder that is not the checkout, with no PYTHONPATH.  About 10 s in all.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from ram_core.app_launcher import STREAMLIT_OPTIONS, streamlit_command
from ram_core.cli import build_parser
from ram_core.presets import DEFAULT_STEPS

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAM_STUDIO_CHECKPOINT", "RAM_STUDIO_HOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(virtual environment's bin folder, a folder outside the checkout holding a sample photo)."""
    base = tmp_path_factory.mktemp("wheel")
    env = _clean_env()
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(base / "dist"), str(ROOT)], capture_output=True, text=True, env=env, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = next((base / "dist").glob("ram_studio-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(base / "venv")],
                   check=True, timeout=120)
    bin_dir = base / "venv" / "bin"
    # the system's pip installs into the venv's interpreter: --without-pip spares a copy of pip
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-q",
                              "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
                             capture_output=True, text=True, env=env, timeout=300)
    assert install.returncode == 0, install.stderr
    work = base / "elsewhere"
    work.mkdir()
    shutil.copy(ROOT / "assets" / "samples" / "cat.jpg", work / "my cat.jpg")
    return bin_dir, work


def test_app_options_are_the_checkouts_streamlit_config():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    flat = {f"{section}.{k}": str(v).lower() for section, values in config.items() for k, v in values.items()}
    assert flat == STREAMLIT_OPTIONS


def test_app_command_lets_given_streamlit_options_win():
    cmd = streamlit_command(["--server.port", "9999", "--client.toolbarMode=viewer"], python="py")
    assert cmd[:4] == ["py", "-m", "streamlit", "run"] and Path(cmd[4]).name == "app.py" and Path(cmd[4]).is_file()
    assert "--client.toolbarMode=minimal" not in cmd and cmd[-3:] == ["--server.port", "9999", "--client.toolbarMode=viewer"]
    assert "--client.showSidebarNavigation=false" in cmd


def test_every_subpackage_is_in_the_wheel_list():
    """pyproject lists the packages one by one (assets and the app are mapped in): a new subpackage
    must be added there, or `pip install .` leaves it out."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ram_core").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)


def test_every_command_is_in_the_cli():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"predict", "train", "evaluate", "info", "export", "app", "probe", "thresholds"} <= set(sub.choices)


def test_installed_package_is_the_wheel_not_the_checkout(installed):
    bin_dir, work = installed
    out = subprocess.run([str(bin_dir / "python"), "-c",
                          "import ram_core, ram_core.cli, ram_core.data, ram_core.heads; "
                          "from ram_core import locations as l; "
                          "print(ram_core.__file__); print(l.ASSETS_DIR); print(l.APP_SCRIPT.is_file())"],
                         cwd=work, env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    module, assets, app_found = out.stdout.split("\n")[:3]
    assert str(bin_dir.parent) in module and str(ROOT) not in module
    assert Path(assets) == Path(module).parent / "assets"
    assert app_found == "True"


def test_ram_studio_predict_runs_from_another_folder(installed):
    bin_dir, work = installed
    out = subprocess.run([str(bin_dir / "ram-studio"), "predict", "my cat.jpg", "--json", "--device", "cpu"],
                         cwd=work, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    trace = json.loads(out.stdout.strip().splitlines()[0])
    assert trace["image"] == "my cat.jpg"
    assert "cat" in trace["labels"]  # the default model, found inside the installed package
    assert len(trace["steps"]) == DEFAULT_STEPS  # the default model's K
    assert not list(work.glob("runs")) and not list(work.glob("cache"))  # predicting writes nothing


APPTEST = """
import sys
from streamlit.testing.v1 import AppTest
from ram_core.locations import APP_SCRIPT
at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120).run()
assert not at.exception, [e.value for e in at.exception]
print("home mAP", {m.label: m.value for m in at.metric}["mAP"])
at.switch_page("pages/1_Inspect.py").run()
assert not at.exception, [e.value for e in at.exception]
print("samples", len(at.get("button_group")[0].proto.options))
at.switch_page("pages/2_Evaluate.py").run()
assert not at.exception, [e.value for e in at.exception]
print("evaluations", len(at.selectbox(key="evaluate.pick").options))
"""


def test_installed_app_pages_find_the_bundled_model_samples_and_evaluations(installed):
    bin_dir, work = installed
    out = subprocess.run([str(bin_dir / "python"), "-c", APPTEST], cwd=work, env=_clean_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.rsplit(" ", 1) for line in out.stdout.strip().splitlines())
    assert lines["home mAP"] != "—"  # the shipped model's val_mAP
    bundled = [d for d in (ROOT / "assets" / "evaluations").iterdir() if d.is_dir()]
    assert int(lines["samples"]) == 3 and int(lines["evaluations"]) == len(bundled) == 3


def test_ram_studio_app_answers_its_health_check(installed):
    bin_dir, work = installed
    port = _free_port()
    log = work / "app.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([str(bin_dir / "ram-studio"), "app", "--headless", "--port", str(port),
                                 "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
                                cwd=work, env=_clean_env(), stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    answer = r.read().strip()
                    break
            except OSError:
                time.sleep(0.3)
        assert answer == b"ok", log.read_text()
        # `ram-studio app` became Streamlit serving the installed app.py, not the checkout's
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        served = Path(cmdline[cmdline.index(b"run") + 1].decode())
        assert served.name == "app.py" and str(bin_dir.parent) in str(served), cmdline
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
