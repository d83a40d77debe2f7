"""`python -m ram_core COMMAND ...`: argument parsing only; the work is done by the library.

Each command lives in its own module with `add_parser(subparsers)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import RAMError
from ..safe_text import plain

COMMANDS = ("predict", "probe", "train", "evaluate", "thresholds", "info", "app")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ram_core",
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
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except RAMError as exc:
        print(f"error: {plain(exc)}", file=sys.stderr)  # file names and labels may hold terminal escapes
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
