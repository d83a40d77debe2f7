"""The photos a user gave the Inspect page (uploads, and photos sent from the Evaluate page), kept in
the session so that they survive a visit to another page, each removable.

Streamlit forgets a file uploader's files when its page is left, and a hand-off from the Evaluate
page was read from a session key that nothing ever cleared, so such a photo could not be removed.
Here both become entries of one ordered store in the session state; the page shows them as a list
whose entries can be removed.  Pure functions of a MutableMapping (st.session_state in the app).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, MutableMapping

from . import served

KEPT_KEY = "inspect.kept"  # {sha256 of the bytes: KeptPhoto}, oldest first
SEEN_KEY = "inspect.seen_uploads"  # file ids of uploads already taken in (a removed one stays removed)
SHOWN_KEY = "inspect.uploader_ids"  # file ids the uploader held at the page's last run
SENT_KEY = "inspect_path"  # eval_views.INSPECT_KEY: the photo the Evaluate page sends
MAX_KEPT = 48  # app_support.RESULTS_PER_SESSION: beyond this, the oldest photo is dropped


@dataclass(frozen=True)
class KeptPhoto:
    name: str
    data: bytes
    origin: str  # "upload" or "evaluate"
    file_id: str | None = None  # the uploader's id for an upload

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def kept(state: MutableMapping[str, Any]) -> "OrderedDict[str, KeptPhoto]":
    store = state.get(KEPT_KEY)
    if not isinstance(store, OrderedDict):
        store = state[KEPT_KEY] = OrderedDict()
    return store


def _add(state: MutableMapping[str, Any], photo: KeptPhoto) -> None:
    store = kept(state)
    store.setdefault(photo.digest, photo)
    while len(store) > MAX_KEPT:
        store.popitem(last=False)


def take_uploads(state: MutableMapping[str, Any], files: Iterable[Any]) -> None:
    """Keep the uploader's files not taken in before (objects with .name, .file_id, .getvalue())."""
    seen = state.setdefault(SEEN_KEY, set())
    shown = set()
    for f in files or []:
        file_id = _file_id(f)
        shown.add(file_id)
        if file_id not in seen:
            seen.add(file_id)
            _add(state, KeptPhoto(f.name, f.getvalue(), "upload", file_id))
    state[SHOWN_KEY] = shown


def _file_id(f: Any) -> str:
    return str(getattr(f, "file_id", "") or f"{f.name}:{len(f.getvalue())}")


def take_sent(state: MutableMapping[str, Any]) -> str | None:
    """Keep the photo the Evaluate page sent (once: the hand-off key is cleared); its digest, if any."""
    sent = state.pop(SENT_KEY, None)
    if not sent or not Path(sent).is_file() or not served.may_read(sent):  # served: inside the roots only
        return None
    photo = KeptPhoto(Path(sent).name, Path(sent).read_bytes(), "evaluate")
    _add(state, photo)
    return photo.digest


def forget(state: MutableMapping[str, Any], digests: Iterable[str]) -> None:
    store = kept(state)
    for d in digests:
        store.pop(d, None)


def uploads_removed(state: MutableMapping[str, Any], current: Iterable[Any]) -> None:
    """The uploader's on_change: files removed there (its ×) leave the kept photos too.  Only files it
    held at the last run count: uploads kept from before a visit to another page (when Streamlit
    emptied the uploader) stay when another file is added."""
    removed = set(state.get(SHOWN_KEY) or ()) - {_file_id(f) for f in current or []}
    forget(state, [d for d, p in kept(state).items() if p.origin == "upload" and p.file_id in removed])
