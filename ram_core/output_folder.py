"""An output folder that is safe to write into: checked before the work starts, held by one run at a time,
and written with unique temporary names renamed into place.

check_output_folder refuses a path that is a file, a folder that cannot be written, and a folder that
holds anything but an earlier output of the same kind (so `--out ~` or `--out /etc` never overwrites or
deletes a stranger's files).  output_lock makes a second run into the same folder wait for nothing and
fail at once, naming the folder, so a report and predictions from two models are never mixed.
atomic_write_text writes through a uniquely named temporary file in the same folder.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Iterator

from .errors import RAMError

LOCK_FILE = ".ram-studio.lock"


class OutputFolderError(RAMError):
    """An output folder that cannot be used (a file, not writable, holding other files, or busy)."""


def check_output_folder(out: str | os.PathLike, allowed: Iterable[str], what: str = "output folder",
                        create: bool = True) -> Path:
    """Make sure this run may write into `out`, and create it (unless create=False: then only the
    nearest existing parent is checked, and nothing is made on the disk).  `allowed`: the names an
    earlier output of the same kind holds (they are replaced); hidden files (temporaries, the lock) are
    ignored."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"{out}: the {what} is a file, not a folder")
    allowed = set(allowed)
    if out.is_dir():
        try:
            others = sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.name not in allowed)
        except OSError as exc:
            raise OutputFolderError(f"{out}: the {what} cannot be read ({exc.strerror})") from None
        if others:
            raise OutputFolderError(
                f"{out}: the {what} already holds other files ({len(others)}, e.g. {others[0][:60]!r}); "
                "choose a new or empty folder, or one an earlier run of the same command wrote")
    if not create:
        parent = out
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise OutputFolderError(f"{out}: the {what} cannot be written ({parent} is not a writable folder)")
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", delete=True):
            pass
    except OSError as exc:
        raise OutputFolderError(f"{out}: the {what} cannot be written ({exc.strerror or exc})") from None
    return out


_held: dict[Path, int] = {}  # lock files this process holds -> the thread that took it
_held_guard = threading.Lock()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


@contextlib.contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[None]:
    """Hold `out` for this run: a second run (another process, or another session of the app) into the
    same folder is refused with a message while this one lasts.  Re-entrant within one thread; a lock
    left by a process that died is taken over."""
    lock = Path(out) / LOCK_FILE
    key = lock.resolve()
    me = threading.get_ident()
    with _held_guard:
        if key in _held:
            if _held[key] == me:
                nested = True
            else:
                raise OutputFolderError(f"{out}: another run in this app is writing into this folder; "
                                        "wait for it to finish or choose another folder")
        else:
            nested = False
            _take(lock, out)
            _held[key] = me
    if nested:
        yield
        return
    try:
        yield
    finally:
        with _held_guard:
            _held.pop(key, None)
        lock.unlink(missing_ok=True)


def _take(lock: Path, out: str | os.PathLike) -> None:
    host = socket.gethostname()
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder_host, pid = lock.read_text().split(":")[:2]
                stale = holder_host == host and not _alive(int(pid))
            except (OSError, ValueError):
                stale = False
            if not stale:
                raise OutputFolderError(f"{out}: another run is writing into this folder (its lock file "
                                        f"{LOCK_FILE} is there); wait for it to finish or choose another "
                                        "folder") from None
            lock.unlink(missing_ok=True)  # its process died: take the folder over
            continue
        except OSError as exc:
            raise OutputFolderError(f"{out}: cannot lock the folder ({exc.strerror or exc})") from None
        with os.fdopen(fd, "w") as f:
            f.write(f"{host}:{os.getpid()}")
        return
    raise OutputFolderError(f"{out}: cannot lock the folder")


def atomic_write_text(path: Path, lines: Iterable[str], compress: bool = False) -> None:
    """Write lines to a uniquely named temporary file beside `path`, fsync, rename over `path`: a reader
    sees the old file or the whole new one, and two writers never share a temporary file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    opener = gzip.open if compress else open
    try:
        with opener(tmp, "wt", encoding="utf-8") as f:
            for line in lines:
                f.write(line)
            f.flush()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
