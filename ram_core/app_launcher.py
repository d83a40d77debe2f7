"""`ram-studio app`: the Streamlit command line that starts the bundled app from any folder.

Streamlit reads .streamlit/config.toml from the folder it is started in, which after `pip install`
is the user's, not the app's: the app's settings travel as command-line options instead (the same
values as the checkout's .streamlit/config.toml, which tests/test_package.py checks).
"""

from __future__ import annotations

import sys
from typing import Sequence

from .locations import APP_SCRIPT

STREAMLIT_OPTIONS = {
    "client.showSidebarNavigation": "false",
    "client.toolbarMode": "minimal",
    "server.maxUploadSize": "200",
    "browser.gatherUsageStats": "false",
}


def streamlit_command(extra: Sequence[str] = (), python: str | None = None) -> list[str]:
    """[python, -m, streamlit, run, app.py, --option=value ...]; options in `extra` (Streamlit's own,
    e.g. --server.port 8600) come last, so they win."""
    given = {a.split("=", 1)[0].lstrip("-") for a in extra if a.startswith("--")}
    options = [f"--{k}={v}" for k, v in STREAMLIT_OPTIONS.items() if k not in given]
    return [python or sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT), *options, *extra]
