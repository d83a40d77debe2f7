"""`app [--roots SPEC] [--port N] [--address HOST] [--headless] [STREAMLIT OPTIONS]`: start the Streamlit
app (the bundled app.py) from any folder, locally or served.

With --roots (or $RAM_STUDIO_ROOTS) the app runs in served mode (ram_core/served.py): visitors reach
only those folders, and Streamlit shows them no tracebacks (client.showErrorDetails = none; the
server's log keeps them).  The roots are checked before Streamlit starts.  Any other option goes to
`streamlit run` as it is.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the Streamlit app (served mode with --roots; any Streamlit option may "
                                   "follow, e.g. --server.runOnSave true)")
    p.add_argument("--roots", default=None,
                   help="served mode: 'read=DIR[:DIR...];write=DIR' (default: $RAM_STUDIO_ROOTS; unset: local mode)")
    p.add_argument("--port", type=int, default=None, help="port (Streamlit's default 8501)")
    p.add_argument("--address", default=None, help="address to listen on (e.g. 0.0.0.0 to serve others)")
    p.add_argument("--headless", action="store_true", help="do not open a browser (Streamlit's --server.headless)")
    p.add_argument("--dry-run", action="store_true", help="print the command and the roots, start nothing")
    p.set_defaults(run=run, passes_unknown=True)  # any other option goes to `streamlit run` as it is


def app_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """(the streamlit command line, the environment) for these options; RootsError on bad roots."""
    from ..app_launcher import streamlit_command
    from ..served import ENV_ROOTS, parse_roots

    env = dict(os.environ)
    spec = args.roots if args.roots is not None else env.get(ENV_ROOTS, "")
    roots = parse_roots(spec, "--roots" if args.roots is not None else ENV_ROOTS)
    extra = list(getattr(args, "extra_args", []))
    if args.port is not None:
        if not 1 <= args.port <= 65535:
            from ..errors import RAMError

            raise RAMError(f"--port must be between 1 and 65535, got {args.port}")
        extra += ["--server.port", str(args.port)]
    if args.address:
        extra += ["--server.address", args.address]
    if getattr(args, "headless", False):
        extra += ["--server.headless", "true"]
    if roots is not None:
        env[ENV_ROOTS] = spec
        extra += ["--client.showErrorDetails", "none", "--client.toolbarMode", "viewer"]
    else:
        env.pop(ENV_ROOTS, None)
    return streamlit_command(extra), env


def run(args: argparse.Namespace) -> int:
    from ..served import parse_roots

    cmd, env = app_command(args)
    roots = parse_roots(env.get("RAM_STUDIO_ROOTS"))
    mode = f"served mode ({roots.describe()})" if roots is not None else "local mode (every folder reachable)"
    print(f"RAM Studio in {mode}", file=sys.stderr)
    if args.dry_run:
        print(" ".join(shlex.quote(c) for c in cmd))
        return 0
    sys.stdout.flush()
    if os.name == "posix":  # become Streamlit: a signal to this process (Ctrl-C, a supervisor) reaches it
        os.environ.clear()
        os.environ.update(env)
        os.execv(cmd[0], cmd)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
