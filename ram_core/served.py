"""Served mode: the folders a visitor of a served RAM Studio may read and the one folder it may write.

    RAM_STUDIO_ROOTS="read=/data/voc:/data/models;write=/srv/ram-studio"

`read=` lists folders (separated by os.pathsep, ':' on Linux and macOS) that datasets, checkpoints and
evaluations may be read from; `write=` names the one folder evaluations, training jobs, their feature
cache and unpacked uploads are written to (it is readable too, and so is the app's own assets/ folder).
Unset or empty: local mode, every path is taken as typed, as before (the app says so).

Every path a visitor types goes through resolve_read / resolve_write: relative paths start at the first
read root (the write root for outputs; `assets/...` is the app's own folder, as in local mode), `..` and
symbolic links are resolved, and a path outside the
roots is refused with one message whatever the path is, so a refusal never tells whether it exists.
Folder searches (search_files) are bounded in depth, count and time and never start at a filesystem root.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .errors import RAMError

ENV_ROOTS = "RAM_STUDIO_ROOTS"
APP_ROOT = Path(__file__).resolve().parent.parent
APP_ASSETS = APP_ROOT / "assets"  # the bundled models, samples and evaluations: always readable

# Folder searches: at most this deep under each folder, this many files found, entries looked at, seconds.
SEARCH_DEPTH = 6
SEARCH_RESULTS = 500
SEARCH_ENTRIES = 50_000
SEARCH_SECONDS = 3.0
MAX_PATH_CHARS = 1024


class RootsError(RAMError):
    """RAM_STUDIO_ROOTS itself is malformed (the server's operator sees this at start-up)."""


class PathRefused(RAMError):
    """A path outside the served roots.  The message is the same whether or not the path exists."""


@dataclass(frozen=True)
class Roots:
    """The folders of served mode, resolved."""

    read: tuple[Path, ...]
    write: Path | None

    @property
    def readable(self) -> tuple[Path, ...]:
        return self.read + ((self.write,) if self.write else ()) + (APP_ASSETS,)

    def describe(self) -> str:
        return (f"read: {', '.join(map(str, self.read)) or '(none)'}; write: {self.write or '(none)'}")


def _root_folder(text: str, env_name: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise RootsError(f"{env_name}: {text!r} is not an absolute path")
    resolved = path.resolve()
    if resolved == Path(resolved.anchor):
        raise RootsError(f"{env_name}: the filesystem root itself cannot be served")
    if not resolved.is_dir():
        raise RootsError(f"{env_name}: {text!r} is not a folder")
    return resolved


def parse_roots(text: str | None, env_name: str = ENV_ROOTS) -> Roots | None:
    """'read=/a:/b;write=/c' -> Roots; None or blank -> None (local mode).  Raises RootsError."""
    if not text or not text.strip():
        return None
    read: list[Path] = []
    write: Path | None = None
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("read", "write"):
            raise RootsError(f"{env_name}: expected 'read=DIR{os.pathsep}DIR;write=DIR', got {part!r}")
        if key == "read":
            read += [_root_folder(v.strip(), env_name) for v in value.split(os.pathsep) if v.strip()]
        else:
            if write is not None:
                raise RootsError(f"{env_name}: only one write= folder")
            write = _root_folder(value.strip(), env_name)
    if not read and write is None:
        raise RootsError(f"{env_name}: no read= or write= folder")
    return Roots(tuple(dict.fromkeys(read)), write)


def current_roots() -> Roots | None:
    """The roots of $RAM_STUDIO_ROOTS (read at every call: cheap, and tests can change it)."""
    return parse_roots(os.environ.get(ENV_ROOTS))


def is_served() -> bool:
    return bool(os.environ.get(ENV_ROOTS, "").strip())


def _inside(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _shown(text: str) -> str:
    from .safe_text import plain

    text = plain(str(text))
    return text if len(text) <= 80 else text[:77] + "..."


def _refusal(what: str, text: str, writing: bool) -> PathRefused:
    where = "the folder this server writes to" if writing else "the folders this server lets you read"
    return PathRefused(f"{what} {_shown(text)!r} is not inside {where}. Use a path inside "
                       f"{'it' if writing else 'them'} (ask whoever runs this server which ones), or upload the file.")


def _resolve(text: str | os.PathLike, base: Path, allowed: Sequence[Path], what: str, writing: bool) -> Path:
    raw = str(text)
    stripped = raw.strip()
    # One refusal for everything that cannot be a path here: the message never depends on the disk.
    if not stripped or "\x00" in stripped or len(stripped) > MAX_PATH_CHARS or stripped.startswith("~"):
        raise _refusal(what, raw, writing)
    path = Path(stripped)
    try:
        resolved = (path if path.is_absolute() else base / path).resolve()
        if not writing and not path.is_absolute():
            own = (APP_ROOT / path).resolve()  # "assets/..." names the app's own files, as in local mode
            if _inside(own, (APP_ASSETS,)):
                resolved = own
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a name too long
        raise _refusal(what, raw, writing) from None
    if not _inside(resolved, allowed):
        raise _refusal(what, raw, writing)
    return resolved


def resolve_read(text: str | os.PathLike, what: str = "The path", roots: Roots | None = None,
                 local_base: Path = APP_ROOT) -> Path:
    """A path a visitor typed, to read from.  Local mode: as typed (~ expanded, relative to local_base).
    Served mode: resolved, and refused (PathRefused) outside the readable roots."""
    roots = roots if roots is not None else current_roots()
    if roots is None:
        p = Path(str(text).strip()).expanduser()
        return p if p.is_absolute() else local_base / p
    base = roots.read[0] if roots.read else roots.write
    return _resolve(text, base, roots.readable, what, writing=False)


def resolve_write(text: str | os.PathLike, what: str = "The output folder", roots: Roots | None = None,
                  local_base: Path = APP_ROOT) -> Path:
    """A path a visitor typed, to write to.  Served mode: inside the write root only."""
    roots = roots if roots is not None else current_roots()
    if roots is None:
        p = Path(str(text).strip()).expanduser()
        return p if p.is_absolute() else local_base / p
    if roots.write is None:
        raise PathRefused("This server does not let visitors write files (RAM_STUDIO_ROOTS has no write= folder).")
    return _resolve(text, roots.write, (roots.write,), what, writing=True)


def write_root(roots: Roots | None = None) -> Path | None:
    """The served write folder, or None (local mode, or a served app that writes nothing)."""
    roots = roots if roots is not None else current_roots()
    return roots.write if roots is not None else None


def may_read(path: str | os.PathLike, roots: Roots | None = None) -> bool:
    """Whether a path found in a file (an evaluation's image path) may be opened: always in local mode."""
    roots = roots if roots is not None else current_roots()
    if roots is None:
        return True
    try:
        return _inside(Path(path).resolve(), roots.readable)
    except (OSError, RuntimeError, ValueError):
        return False


def check_dataset_paths(kind: str, root: str | os.PathLike, splits: Sequence[str | None] = (),
                        roots: Roots | None = None) -> None:
    """Served mode: the dataset folder and every split that names a file (a folder dataset's labels file,
    or any split with a folder or '..' in it) resolve inside the readable roots; PathRefused otherwise.
    A labels file elsewhere would have its rows quoted in messages.  Local mode: nothing to check."""
    roots = roots if roots is not None else current_roots()
    if roots is None:
        return
    base = resolve_read(root, "The dataset folder", roots=roots)
    for split in splits:
        if not split:
            continue
        names_a_file = kind == "folder" or any(sep in split for sep in ("/", "\\")) or ".." in split
        if names_a_file:
            text = split if Path(split.strip()).is_absolute() else str(base / split.strip())
            resolve_read(text, "The labels file", roots=roots)


def search_files(folders: Sequence[str | os.PathLike], names: Sequence[str] = (), suffixes: Sequence[str] = (),
                 max_depth: int = SEARCH_DEPTH, max_results: int = SEARCH_RESULTS,
                 max_entries: int = SEARCH_ENTRIES, max_seconds: float = SEARCH_SECONDS,
                 roots: Roots | None = None) -> list[Path]:
    """Files under the folders whose name is in `names` or ends with one of `suffixes`, found breadth
    first: at most max_depth levels down, max_results files, max_entries directory entries looked at and
    max_seconds in all.  A folder that is a filesystem root is not searched (typing `/` lists nothing);
    symbolic links to folders are not followed; in served mode nothing outside the roots is searched or
    returned.  Hidden files (atomic-write temporaries) are left out."""
    roots = roots if roots is not None else current_roots()
    deadline = time.monotonic() + max_seconds
    found: dict[Path, None] = {}
    seen_entries = 0
    for folder in folders:
        try:
            start = Path(folder).resolve()
        except (OSError, RuntimeError, ValueError):
            continue
        if start == Path(start.anchor) or not start.is_dir():
            continue
        if roots is not None and not _inside(start, roots.readable):
            continue
        level = [start]
        for depth in range(max_depth + 1):
            below: list[Path] = []
            for d in level:
                try:
                    with os.scandir(d) as it:
                        entries = sorted(it, key=lambda e: e.name)
                except OSError:
                    continue
                for e in entries:
                    seen_entries += 1
                    if seen_entries > max_entries or len(found) >= max_results or time.monotonic() > deadline:
                        return list(found)
                    if e.name.startswith("."):
                        continue
                    try:
                        if e.is_dir(follow_symlinks=False):
                            below.append(Path(e.path))
                        elif e.is_file() and (e.name in names or e.name.endswith(tuple(suffixes))):
                            p = Path(e.path).resolve()
                            if roots is None or _inside(p, roots.readable):
                                found[p] = None
                    except OSError:
                        continue
            if depth == max_depth or not below:
                break
            level = below
    return list(found)


LOCAL_NOTE = ("Local mode: this app can read and write any folder this machine's user can. Before serving it to "
              f"others, set {ENV_ROOTS} (see README, *Serving RAM Studio*).")


def checked_folders(text: str, local_base: Path) -> tuple[list[Path], list[str]]:
    """Comma- or semicolon-separated folders a visitor typed -> (the folders, resolved; the refusal
    message of each one outside the served roots).  Local mode: as typed, relative to local_base
    ('assets/...' finds the bundled files, locations.resolve_user_path)."""
    from .locations import resolve_user_path

    out, refused = [], []
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        if current_roots() is None:
            out.append(resolve_user_path(part, local_base))
            continue
        try:
            out.append(resolve_read(part, "The folder", local_base=local_base))
        except PathRefused as exc:
            refused.append(str(exc))
    return out, refused
