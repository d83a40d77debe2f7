"""Do the hostile-input tests catch a missing defence?  Remove each defence below from a scratch copy of the
project, run the test file that should notice, and print the removals no test caught.

    python scripts/reliability_mutations.py [--only WORD ...] [--list]

Exits 1 if a removal survives, or if its text is no longer found (the code moved: update the entry, do
not drop it).  RELIABILITY.md lists the inputs; this checks that their tests can fail.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (file, text, replacement, the tests (a file or a node id) that must fail): the text must occur exactly once.
MUTATIONS: dict[str, tuple[str, str, str, str]] = {
    "config bounds not checked": (
        "ram_core/checkpoints.py", '        check_config_dict(meta["config"])', "        pass",
        # one harmless case: without the bounds, the 10^9-step one would really try to allocate
        "tests/test_checkpoint_bounds.py::test_a_hostile_checkpoint_is_a_checkpoint_error_that_names_the_problem"
        "[dropout_above_1]"),
    "NaN weights accepted": (
        "ram_core/checkpoints.py",
        "    for key, t in tensors.items():\n        if t.is_floating_point() and not bool(torch.isfinite(t).all()):",
        "    for key, t in {}.items():\n        if t.is_floating_point() and not bool(torch.isfinite(t).all()):",
        "tests/test_checkpoint_bounds.py"),
    "tensor kinds not compared": (
        "ram_core/checkpoints.py", "        _check_kind(k, v.dtype, entry.dtype, what)", "        pass",
        "tests/test_checkpoint_bounds.py"),
    "a search may start at /": (
        "ram_core/served.py", "        if start == Path(start.anchor) or not start.is_dir():",
        "        if not start.is_dir():", "tests/test_served.py"),
    "symbolic links not resolved in served paths": (
        "ram_core/served.py", "        resolved = (path if path.is_absolute() else base / path).resolve()",
        "        resolved = Path(os.path.normpath(path if path.is_absolute() else base / path))",
        "tests/test_served.py"),
    "labels files named by path not checked when served": (
        "ram_core/served.py",
        "    roots = roots if roots is not None else current_roots()\n    if roots is None:\n        return\n"
        "    base = resolve_read(root",
        "    roots = None\n    if roots is None:\n        return\n    base = resolve_read(root",
        "tests/test_app_served.py"),
    "markdown not escaped": (
        "ram_core/safe_text.py", '    return _MARKDOWN.sub(r"\\\\\\1", plain(text))', "    return plain(text)",
        "tests/test_app_served.py"),
    "dataset rows may leave the folder": (
        "ram_core/data/base.py", "    return Path(path) if path.startswith(base + os.sep) else None",
        "    return Path(path)", "tests/test_hostile_inputs.py"),
    "output folder not locked": (
        "ram_core/output_folder.py", "            nested = False\n            _take(lock, out)",
        "            nested = False", "tests/test_hostile_inputs.py"),
    "a stranger's folder accepted as --out": (
        "ram_core/output_folder.py", "        if others:\n", "        if False:\n", "tests/test_hostile_inputs.py"),
    "a NaN loss trains on": (
        "ram_core/training/loop.py", "            if not bool(torch.isfinite(terms.total.detach())):",
        "            if False:", "tests/test_hostile_inputs.py"),
    "NaN model outputs kept": (
        "ram_core/evaluation.py", "    return torch.cat([torch.isfinite(c.float()) for c in checks], 1).all(1).tolist()",
        "    return [True] * b", "tests/test_hostile_inputs.py"),
    "saved predictions not checked": (
        "ram_core/eval_views.py", "    for i, r in enumerate(records):\n        check_record(r, i)\n",
        "", "tests/test_app_served.py"),
}


def copy_project(dest: Path) -> None:
    for name in ("ram_core", "tests", "pages", "scripts", ".streamlit"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "app.py"):
        shutil.copy2(ROOT / name, dest / name)
    (dest / "assets").symlink_to(ROOT / "assets")  # read-only use: the default model, samples


def run_test(where: Path, test: str) -> tuple[bool, str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", test],
                          cwd=where, capture_output=True, text=True)
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    return proc.returncode == 0, last


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", help="run only the removals whose names contain these words")
    p.add_argument("--list", action="store_true")
    args = p.parse_args()
    chosen = {k: v for k, v in MUTATIONS.items() if not args.only or any(w in k for w in args.only)}
    if args.list:
        print("\n".join(chosen))
        return 0
    survivors, stale = [], []
    with tempfile.TemporaryDirectory(prefix="ram-reliability-") as tmp:
        for i, (name, (file, old, new, test)) in enumerate(chosen.items(), 1):
            where = Path(tmp) / f"m{i}"
            copy_project(where)
            text = (where / file).read_text()
            if text.count(old) != 1:
                stale.append(name)
                print(f"[{i:2d}/{len(chosen)}] STALE    {name}: its text occurs {text.count(old)} times in {file}")
                continue
            (where / file).write_text(text.replace(old, new))
            t0 = time.perf_counter()
            passed, last = run_test(where, test)
            print(f"[{i:2d}/{len(chosen)}] {'SURVIVED' if passed else 'caught':8s} {name}  "
                  f"({test}, {time.perf_counter() - t0:.1f} s)", flush=True)
            if passed:
                survivors.append(name)
            shutil.rmtree(where)
    print(f"\n{len(chosen) - len(survivors) - len(stale)} of {len(chosen)} removed defences caught.")
    print("surviving:", ", ".join(survivors) if survivors else "none")
    if stale:
        print("stale (text not found):", ", ".join(stale))
    return 1 if survivors or stale else 0


if __name__ == "__main__":
    sys.exit(main())
