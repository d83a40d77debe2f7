"""`app [STREAMLIT OPTIONS]`: start the Streamlit app (the bundled app.py) from any folder."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the Streamlit app (any Streamlit option may follow, e.g. --server.port 8600)")
    p.add_argument("--port", type=int, default=None, help="the port to serve on (Streamlit's --server.port)")
    p.add_argument("--headless", action="store_true", help="do not open a browser (Streamlit's --server.headless)")
    p.set_defaults(run=run, passes_unknown=True)  # any other option goes to `streamlit run` as it is


def run(args: argparse.Namespace) -> int:
    from ..app_launcher import streamlit_command

    extra = list(getattr(args, "extra_args", []))
    if args.port is not None:
        extra += ["--server.port", str(args.port)]
    if args.headless:
        extra += ["--server.headless", "true"]
    cmd = streamlit_command(extra)
    sys.stdout.flush()
    if os.name == "posix":  # become Streamlit: a signal to this process (Ctrl-C, a supervisor) reaches it
        os.execv(cmd[0], cmd)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0
