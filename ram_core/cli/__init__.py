"""`ram-studio COMMAND ...` (or `python -m ram_core COMMAND ...`): argument parsing only; the work is
done by the library.

Each command lives in its own module with `add_parser(subparsers)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import RAMError
from ..safe_text import plain

COMMANDS = ("predict", "probe", "train", "evaluate", "columns", "thresholds", "info", "export", "app")


def _prog() -> str:
    """'ram-studio' when started by the console script, else 'python -m ram_core'."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "ram-studio" if name.startswith("ram-studio") else "python -m ram_core"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="RAM Studio: recurrent-attention multi-label image recognition (Wang et al., ICCV 2017).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passes_unknown", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra_args = extra  # `app`: Streamlit's own options, passed on as they are
    try:
        return int(args.run(args) or 0)
    except RAMError as exc:
        print(f"error: {plain(exc)}", file=sys.stderr)  # file names and labels may hold terminal escapes
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
