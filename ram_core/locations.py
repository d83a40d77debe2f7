"""Where RAM Studio's files are, in a source checkout and in an installed package.

In a checkout the bundled files sit beside the package (assets/, app.py, pages/); an installed wheel
carries them inside it (ram_core/assets/, ram_core/app/), see pyproject.toml's package-dir.  What a
user makes (runs/, cache/, relative folders typed in the app) is taken from the work folder:
$RAM_STUDIO_HOME when set, else the checkout in a checkout (as before), else the current folder.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ENV_HOME = "RAM_STUDIO_HOME"  # where runs/ and cache/ go for an installed package


def _checkout_root() -> Path | None:
    """The repository root when ram_core is imported from a source checkout, else None."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "app.py").is_file() else None


CHECKOUT_ROOT = _checkout_root()
ASSETS_DIR = PACKAGE_DIR / "assets" if (PACKAGE_DIR / "assets").is_dir() else PACKAGE_DIR.parent / "assets"
APP_DIR = PACKAGE_DIR / "app" if (PACKAGE_DIR / "app" / "app.py").is_file() else PACKAGE_DIR.parent
APP_SCRIPT = APP_DIR / "app.py"
PAGES_DIR = APP_DIR / "pages"
SAMPLES_DIR = ASSETS_DIR / "samples"
EVALUATIONS_DIR = ASSETS_DIR / "evaluations"


def work_dir() -> Path:
    """The folder runs/ and cache/ live in, and relative folders start from."""
    env = os.environ.get(ENV_HOME, "").strip()
    if env:
        return Path(env).expanduser()
    return CHECKOUT_ROOT if CHECKOUT_ROOT is not None else Path.cwd()


def display_path(path: str | os.PathLike, base: Path | None = None) -> str:
    """A path as a reader wants it: relative to the work folder (or `base`), else 'assets/...' for a
    bundled file, else as it is."""
    p = Path(path)
    try:
        resolved = p.resolve()
    except OSError:
        return str(path)
    base = work_dir() if base is None else base
    for folder, prefix in ((base.resolve(), ""), (ASSETS_DIR.resolve(), "assets")):
        try:
            rel = resolved.relative_to(folder)
        except ValueError:
            continue
        return str(Path(prefix) / rel) if prefix else str(rel)
    return str(path)


def resolve_user_path(text: str, base: Path | None = None) -> Path:
    """A folder typed by a user: absolute as is, relative from the work folder (or `base`); 'assets/...'
    names the bundled files when the work folder has no such folder."""
    p = Path(text.strip()).expanduser()
    if p.is_absolute():
        return p
    base = work_dir() if base is None else base
    if p.parts and p.parts[0] == "assets" and not (base / p).exists():
        return ASSETS_DIR.parent / p
    return base / p


def path_in_root(path: str | os.PathLike, root: str | os.PathLike | None) -> str:
    """`path` relative to `root` with forward slashes (how evaluations and checkpoints name a dataset's
    files, so that they read the same on another machine), or as it is when it is not inside root."""
    if not root:
        return str(path)
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return str(path)


def portable_command(argv: list[str], root: str | os.PathLike | None = None) -> list[str]:
    """A command line without this machine's absolute paths: the dataset root becomes its folder name,
    paths inside it 'ROOTNAME/...', paths inside the work folder relative to it."""
    out = []
    root_abs = Path(os.path.abspath(root)) if root else None
    work = work_dir().resolve()
    for arg in argv:
        p = Path(arg)
        if not p.is_absolute():
            out.append(arg)
            continue
        if root_abs is not None and (p == root_abs or root_abs in p.parents):
            out.append((Path(root_abs.name) / p.relative_to(root_abs)).as_posix())
            continue
        try:
            out.append(p.relative_to(work).as_posix() or ".")
        except ValueError:
            out.append(arg)
    return out
