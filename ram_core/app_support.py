"""What the Streamlit pages call: finding checkpoints, the cached model, reading uploads, the bundled
samples, per-session result caching, and the model picker every page shares.

The only module in ram_core that imports streamlit.  The plain functions (list_checkpoints,
read_image_input, list_samples, inspect_images, ...) need no Streamlit runtime and are tested
directly; model_picker / require_model render widgets and are tested through AppTest.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, MutableMapping, Sequence

import streamlit as st
import torch
from PIL import Image

from . import served
from .errors import CheckpointError, ImageReadError
from .imageio import open_image
from .inference import DEFAULT_CHECKPOINT, Predictor, device_label, resolve_device
from .locations import ASSETS_DIR, PAGES_DIR, SAMPLES_DIR, display_path, work_dir
from .safe_text import md
from .trace import AttentionTrace
from .viz.render import display_copy

ROOT = work_dir()  # runs/ and relative folders start here (the checkout, or the current folder)
PAGE_ICONS = {"Inspect": ":material/center_focus_strong:", "Evaluate": ":material/analytics:",
              "Train": ":material/model_training:"}
ENV_CHECKPOINT = "RAM_STUDIO_CHECKPOINT"  # a checkpoint path used as the default model
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
MAX_CHECKPOINTS_LISTED = 200
MODEL_CACHE_ENTRIES = 3  # models kept in memory at once, across all sessions
RESULTS_PER_SESSION = 48  # inspected images kept per session (display copy + trace)

SAMPLE_TITLES = {"astronaut": "Astronaut", "cat": "Cat", "motorcycle": "Motorcycle"}

# Session-state keys.  Widget keys live apart from the values they store, because Streamlit drops a
# widget's state when the user switches to a page that renders the widget again under a new page.
_STORE = "ram_studio.model_choice"
_UPLOADED_CKPT = "ram_studio.uploaded_checkpoint"
_RESULTS = "ram_studio.results"
_W_FOLDERS = "ram_studio.w.folders"
_W_CHOICE = "ram_studio.w.checkpoint"
_W_DEVICE = "ram_studio.w.device"
_W_UPLOAD = "ram_studio.w.upload"

DEFAULT_CHOICE = "default"
UPLOAD_CHOICE = "upload"


# --------------------------------------------------------------------------------------------------
# Pages


def page_title(path: Path) -> str:
    """pages/1_Inspect.py -> 'Inspect'; pages/3_Model_card.py -> 'Model card'."""
    stem = path.stem
    head, _, rest = stem.partition("_")
    return (rest if head.isdigit() and rest else stem).replace("_", " ")


def list_pages(folder: Path = PAGES_DIR) -> list[tuple[str, str]]:
    """(path relative to the app, title) of every pages/NN_Name.py, in Streamlit's order (by number)."""
    paths = [p for p in folder.glob("*.py") if not p.name.startswith(("_", "."))]
    paths.sort(key=lambda p: (int(p.stem.partition("_")[0]) if p.stem.partition("_")[0].isdigit() else 10**6, p.name))
    return [(f"{folder.name}/{p.name}", page_title(p)) for p in paths]


def _hide_default_navigation() -> None:
    """Streamlit's own page list would label the home page "app" (its file name), so pages draw their
    own links instead.  The option reaches the browser with the next run: rerun once when it changes."""
    if st.get_option("client.showSidebarNavigation"):
        st.set_option("client.showSidebarNavigation", False)
        st.rerun()


def serving_setup() -> served.Roots | None:
    """Served mode ($RAM_STUDIO_ROOTS set): visitors see no tracebacks (the server's log keeps them).
    Returns the roots, or None in local mode.  A malformed $RAM_STUDIO_ROOTS stops every page with its
    message rather than falling back to local mode."""
    try:
        roots = served.current_roots()
    except served.RootsError as exc:
        st.set_option("client.showErrorDetails", "none")
        st.error(f"**This server is misconfigured.** {md(exc)}", icon=":material/error:")
        st.stop()
    if roots is not None and st.get_option("client.showErrorDetails") != "none":
        st.set_option("client.showErrorDetails", "none")
    return roots


def mode_note(roots: served.Roots | None) -> None:
    """The sidebar's line on what this app may touch."""
    if roots is None:
        st.sidebar.caption(":material/lock_open: " + md(served.LOCAL_NOTE), help=None)
    else:
        st.sidebar.caption(":material/lock: Served mode: paths are limited to the folders this server shares. "
                           "Upload files to use your own.")


def navigation() -> None:
    """Links to the home page and every page in pages/, at the top of the sidebar."""
    mode_note(serving_setup())
    _hide_default_navigation()
    st.sidebar.page_link("app.py", label="Home", icon=":material/home:")
    for path, title in list_pages():
        st.sidebar.page_link(path, label=title, icon=PAGE_ICONS.get(title, ":material/article:"))
    st.sidebar.divider()


# --------------------------------------------------------------------------------------------------
# Checkpoints


def default_checkpoint_path() -> Path:
    """$RAM_STUDIO_CHECKPOINT if set, else the embedded default model (which may be missing)."""
    env = os.environ.get(ENV_CHECKPOINT, "").strip()
    return Path(env).expanduser() if env else DEFAULT_CHECKPOINT


def default_folders() -> list[Path]:
    """assets/ plus runs/ when it exists, plus the Train page's jobs folder when it is elsewhere
    ($RAM_STUDIO_JOBS_DIR), so that a checkpoint trained in the app is listed.  Served mode: assets/,
    the read roots and the write root."""
    from .jobs.store import default_jobs_dir

    roots = served.current_roots()
    if roots is not None:
        return [ASSETS_DIR, *roots.read] + ([roots.write] if roots.write else [])
    folders = [ASSETS_DIR]
    if (ROOT / "runs").is_dir():
        folders.append(ROOT / "runs")
    jobs = default_jobs_dir()
    if jobs.is_dir() and not any(f.resolve() == jobs.resolve() or f.resolve() in jobs.resolve().parents for f in folders):
        folders.append(jobs)
    return folders


def choose_checkpoint(path: Path, state: MutableMapping | None = None) -> None:
    """Make `path` the sidebar's model on every page (the Train page's "Open in Inspect / Evaluate"),
    adding its folder to the checkpoint folders when no listed folder holds it."""
    state = st.session_state if state is None else state
    store = state.setdefault(_STORE, {})
    path = Path(path).resolve()
    folders = parse_folders(store.get("folders") or folders_text(default_folders()))
    if not any(f.resolve() in path.parents for f in folders):
        folders.append(path.parent)
    store["folders"] = folders_text(folders)
    store["checkpoint"] = str(path)


def folders_text(folders: Sequence[Path]) -> str:
    return ", ".join(_short(p) for p in folders)


def parse_folders(text: str) -> list[Path]:
    """'assets, runs/voc' -> paths; relative paths are taken from the repository root.  Served mode:
    folders outside the roots are left out (checked_folders says which)."""
    return checked_folders(text)[0]


def checked_folders(text: str) -> tuple[list[Path], list[str]]:
    """(the folders typed, resolved; the refusal message of each one outside the served roots)."""
    return served.checked_folders(text, ROOT)


def list_checkpoints(folders: Sequence[Path], limit: int = MAX_CHECKPOINTS_LISTED) -> list[Path]:
    """Every *.safetensors under the folders, newest first, without duplicates: a bounded search
    (served.search_files: depth, count and time limited, never from a filesystem root)."""
    found: dict[Path, float] = {}
    for path in served.search_files(folders, suffixes=(".safetensors",)):
        try:
            found[path] = path.stat().st_mtime
        except OSError:
            continue
    return sorted(found, key=lambda p: (-found[p], str(p)))[:limit]


def _short(path: Path) -> str:
    """A path relative to the work folder when it is inside it ('assets/...' for the bundled files)."""
    return display_path(path, ROOT)


def file_key(path: Path) -> str:
    """Identifies a checkpoint file's current contents cheaply: path, size and modification time, so a
    checkpoint rewritten by training is loaded again."""
    st_ = path.stat()
    return f"file:{path.resolve()}:{st_.st_size}:{st_.st_mtime_ns}"


def checkpoint_map(path: Path) -> float | None:
    """The mAP of a checkpoint's evaluation summary, read from its header alone (for the picker's
    labels: a checkpoint trained on the Train page shows its validation mAP); None when it has none."""
    try:
        return _header_map(file_key(path))
    except OSError:
        return None


@functools.lru_cache(maxsize=1024)
def _header_map(key: str) -> float | None:
    import json
    import struct

    from .checkpoints import META_KEY

    path = key.split(":", 1)[1].rsplit(":", 2)[0]  # file_key: "file:<path>:<size>:<mtime>"
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 16 * 2**20:
                return None
            meta = json.loads(f.read(n)).get("__metadata__", {}).get(META_KEY)
        meta = json.loads(meta) if meta else {}
        flip = bool((meta.get("config") or {}).get("test_time_flip"))
        m = evaluation_map(meta.get("evaluation"), test_time_flip=flip)
    except (OSError, ValueError, struct.error, AttributeError, TypeError, RecursionError):
        return None
    return None if m is None else (m if m > 1 else 100 * m)


def blob_key(blob: bytes) -> str:
    return "upload:" + hashlib.sha256(blob).hexdigest()


@st.cache_resource(max_entries=MODEL_CACHE_ENTRIES, show_spinner=False)
def _cached_predictor(key: str, device: str, path: str | None, name: str, _blob: bytes | None) -> Predictor:
    """One Predictor per (checkpoint contents, device), shared by all sessions.  The Predictor runs its
    forward pass under a threading.Lock, so concurrent sessions can share it.  `_blob` is not hashed
    (the leading underscore): `key` already names its contents."""
    if _blob is not None:
        predictor = Predictor.from_bytes(_blob, name, device)
    else:
        predictor = Predictor.from_checkpoint(path, device)
    # One forward pass now, so that one-time kernel set-up is not counted in the first image's time.
    size = predictor.cfg.input_size
    predictor.run_tensors(torch.zeros(1, 3, size, size))
    return predictor


def load_predictor(source: "ModelSource", device: str = "auto") -> Predictor:
    """The cached Predictor for a source on a device ('auto', 'cpu', 'cuda').  Raises CheckpointError."""
    dev = str(resolve_device(device))
    if source.blob is not None:
        return _cached_predictor(source.key, dev, None, source.name, source.blob)
    path = Path(source.path)
    if not path.is_file():
        if source.kind == DEFAULT_CHOICE:
            raise CheckpointError(missing_default_message(path))
        raise CheckpointError(f"checkpoint not found: {path}")
    return _cached_predictor(file_key(path), dev, str(path), source.name, None)


def missing_default_message(path: Path) -> str:
    return (
        f"The default model (`{_short(path)}`) is not in this copy of RAM Studio yet. "
        "Pick a checkpoint in the sidebar (one found in a folder, or upload a `.safetensors` file), "
        "or train one with `python -m ram_core train` (see `python -m ram_core train --help`)."
    )


@dataclass
class ModelSource:
    """Where a model comes from: the default, a file, or an uploaded checkpoint's bytes."""

    kind: str  # DEFAULT_CHOICE, "file" or UPLOAD_CHOICE
    name: str  # shown to the user
    path: str | None = None
    blob: bytes | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        if self.blob is not None:
            return blob_key(self.blob)
        p = Path(self.path)
        return file_key(p) if p.is_file() else f"missing:{p}"


@dataclass
class ModelState:
    """The picker's outcome: a loaded predictor, or why there is none."""

    source: ModelSource | None
    device: str
    predictor: Predictor | None = None
    error: str | None = None
    seconds: float | None = None  # time to load (~0 when it came from the cache)
    missing_default: bool = False  # the default model was chosen and its file does not exist

    @property
    def key(self) -> str:
        """Identifies the model's contents and device, for caching results."""
        return f"{self.source.key}@{self.predictor.device}" if self.predictor and self.source else ""


# --------------------------------------------------------------------------------------------------
# Images


@dataclass
class ImageInput:
    """One image the user gave: decoded, or the reason it could not be."""

    name: str
    digest: str  # sha256 of the bytes
    image: Image.Image | None = None
    error: str | None = None
    source: str = "upload"  # "upload" or "sample"


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_image_input(name: str, data: bytes, source: str = "upload") -> ImageInput:
    """Decode bytes with ram_core.imageio; a bad file becomes an ImageInput with an error message."""
    digest = digest_bytes(data)
    try:
        return ImageInput(name, digest, open_image(data, name), source=source)
    except ImageReadError as exc:
        return ImageInput(name, digest, None, str(exc), source)


@dataclass(frozen=True)
class Sample:
    name: str  # file name
    title: str
    path: Path

    def read(self) -> bytes:
        return self.path.read_bytes()


def list_samples(folder: Path = SAMPLES_DIR) -> list[Sample]:
    """The bundled sample photos (assets/samples/*.jpg|png), in a stable order."""
    if not folder.is_dir():
        return []
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [Sample(p.name, SAMPLE_TITLES.get(p.stem, p.stem.replace("_", " ").title()), p) for p in paths]


# --------------------------------------------------------------------------------------------------
# Results


@dataclass
class Inspection:
    """One image's result: the trace (original-image pixels) and a display-size copy of the image.
    Derived pictures (figures, crops) are computed once and kept in `derived`."""

    name: str
    digest: str
    image: Image.Image  # at most render.DISPLAY_MAX_SIDE pixels per side
    trace: AttentionTrace
    derived: dict[str, Any] = field(default_factory=dict, repr=False)

    def get(self, what: str, make: Callable[[], Any]) -> Any:
        if what not in self.derived:
            self.derived[what] = make()
        return self.derived[what]


class LRU(OrderedDict):
    """A dict that forgets its least recently used entries beyond maxsize."""

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def get_recent(self, key):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)


def metric_row(n: int) -> list:
    """n places for metrics side by side that wrap onto another line when the page is narrow (in
    st.columns they are squeezed and cut off: an 820 px window with the sidebar open)."""
    row = st.container(horizontal=True, gap="large", horizontal_alignment="distribute")
    return [row.container(width="content") for _ in range(n)]


def session_results() -> LRU:
    """This session's inspected images, keyed by (model key, image digest)."""
    cache = st.session_state.get(_RESULTS)
    if not isinstance(cache, LRU):
        cache = st.session_state[_RESULTS] = LRU(RESULTS_PER_SESSION)
    return cache


def inspect_images(predictor: Predictor, model_key: str, inputs: Sequence[ImageInput],
                   cache: MutableMapping | None = None) -> list[Inspection]:
    """Inspections for the decoded inputs, running the model only on those not in `cache` (one batch)."""
    cache = cache if cache is not None else LRU(RESULTS_PER_SESSION)
    todo = [i for i in inputs if i.image is not None and (model_key, i.digest) not in cache]
    if todo:
        traces = predictor.predict([(i.name, i.image) for i in todo])
        for i, trace in zip(todo, traces):
            result = Inspection(i.name, i.digest, display_copy(i.image), trace)
            if isinstance(cache, LRU):
                cache.put((model_key, i.digest), result)
            else:
                cache[(model_key, i.digest)] = result
    out = []
    for i in inputs:
        if i.image is None:
            continue
        result = cache[(model_key, i.digest)]
        if result.name != i.name:  # the same bytes uploaded under another name
            result = Inspection(i.name, i.digest, result.image, dataclasses.replace(result.trace, image=i.name),
                                result.derived)
        out.append(result)
    return out


# --------------------------------------------------------------------------------------------------
# The model picker (sidebar), shared by every page


def _device_options() -> list[str]:
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _device_name(option: str) -> str:
    try:
        return device_label(resolve_device(option))
    except CheckpointError:
        return option


def _restore(widget_key: str, value: Any, options: Sequence[Any] | None = None) -> None:
    """Seed a widget from the stored choice (before it is created), so the choice survives page switches."""
    if options is not None and value not in options:
        value = options[0]
    st.session_state[widget_key] = value


def _remember(name: str, widget_key: str) -> None:
    st.session_state.setdefault(_STORE, {})[name] = st.session_state.get(widget_key)


def head_text(cfg) -> str:
    """The head in a few words: 'recurrent attention, K = 5 + CSRA companion', 'CSRA (no steps)', ..."""
    if cfg.head == "ram":
        return f"recurrent attention, K = {cfg.num_steps}" + (
            f" + {cfg.companion.upper()} companion" if cfg.companion != "none" else "")
    if cfg.head == "csra":
        return "CSRA (class-specific attention, no steps)"
    return "global pooling (no attention)"


def describe_model(predictor: Predictor) -> dict[str, str]:
    """A few facts about a loaded model, as short strings for captions and metrics."""
    cfg = predictor.cfg
    info = predictor.info
    facts = {
        "Backbone": cfg.backbone,
        "Head": head_text(cfg),
        "Classes": str(cfg.num_classes),
        "Input": f"{cfg.input_size} × {cfg.input_size}",
    }
    data = (info.provenance or {}).get("data")
    if data:  # older checkpoints name the dataset root by its absolute path on the training machine
        facts["Trained on"] = re.sub(r"^(\w+):(/\S*/)?([^/\s]+)/?(\s|$)", r"\1:\3\4", str(data))
    date = (info.provenance or {}).get("date")
    if date:
        facts["Date"] = str(date)[:10]
    if info.class_thresholds:
        facts["Thresholds"] = f"per class ({len(info.class_thresholds)})"
    m = evaluation_map(info.evaluation, test_time_flip=cfg.test_time_flip)
    trained = m is None  # no evaluation yet: the validation mAP training stored (all the shipped model has)
    m = training_val_map(info.evaluation) if trained else m
    if m is not None:
        facts["mAP"] = f"{m:.1f}" if m > 1 else f"{100 * m:.1f}"
        if trained:
            facts["mAP from"] = "validation during training"
        elif (plain := evaluation_map(info.evaluation)) is not None and m != plain:
            # the cross-validation's flip-averaged number: the setting the model runs with
            facts["mAP from"] = f"cross-validation with flip averaging, as the model runs ({plain:.1f} without)"
    return facts


def evaluation_map(evaluation: dict | None, test_time_flip: bool = False) -> float | None:
    """The mAP in an evaluation summary, wherever the evaluator put it (mAP, map, metrics.mAP).

    test_time_flip: the model runs with flip averaging, so prefer the number measured that way where the
    summary has it (mAP_test_time_flip: the cross-validation's, scripts/bundle_cv_evaluation.py)."""
    if not isinstance(evaluation, dict):
        return None
    if test_time_flip and isinstance(evaluation.get("mAP_test_time_flip"), (int, float)):
        return float(evaluation["mAP_test_time_flip"])
    for d in (evaluation, evaluation.get("metrics") or {}, evaluation.get("summary") or {}):
        if isinstance(d, dict):
            for k in ("mAP", "map", "mean_ap"):
                if isinstance(d.get(k), (int, float)):
                    return float(d[k])
    return None


def training_val_map(evaluation: dict | None) -> float | None:
    """The validation mAP (all classes) training stored with the best epoch (val_mAP), if any."""
    value = evaluation.get("val_mAP") if isinstance(evaluation, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


# The models shipped in assets/, by the name the picker gives them (assets/MODEL_CARD.md describes each).
BUNDLED_MODEL_NAMES = {
    "ram_paper.safetensors": "Paper's model (RDAR)",
    "ram_baseline.safetensors": "Strongest baseline (CSRA)",
}


def bundled_model_name(path: Path) -> str | None:
    """The picker's name of a checkpoint shipped in assets/ (None for any other file)."""
    from .locations import ASSETS_DIR

    path = Path(path)
    try:
        shipped = path.resolve().parent == ASSETS_DIR.resolve()
    except OSError:
        return None
    return BUNDLED_MODEL_NAMES.get(path.name) if shipped else None


def model_picker() -> ModelState:
    """Render the sidebar every page shares (navigation, then the model section) and load the chosen
    model (cached).  Call it first on every page.

    Choices: the default model ($RAM_STUDIO_CHECKPOINT or assets/ram_default.safetensors), any
    .safetensors under the folders the user sets (default: assets/ and runs/), or an uploaded
    checkpoint.  The choice is kept in st.session_state, so every page shows the same model.
    """
    navigation()
    store = st.session_state.setdefault(_STORE, {})
    sb = st.sidebar
    sb.header("Model")

    _restore(_W_FOLDERS, store.get("folders", folders_text(default_folders())))
    folders_input = sb.text_input(
        "Checkpoint folders", key=_W_FOLDERS, on_change=_remember, args=("folders", _W_FOLDERS),
        help="Comma-separated folders searched (recursively) for .safetensors checkpoints; relative "
             "paths start at the repository.",
    )
    folders, refused = checked_folders(folders_input)
    for message in refused:
        sb.warning(md(message), icon=":material/block:")
    default_path = default_checkpoint_path()
    found = [p for p in list_checkpoints(folders) if p != default_path.resolve()]
    uploaded = st.session_state.get(_UPLOADED_CKPT)
    options = [DEFAULT_CHOICE] + [str(p) for p in found] + [UPLOAD_CHOICE]

    def label(option: str) -> str:
        if option == DEFAULT_CHOICE:
            missing = "" if default_path.is_file() else " (missing)"
            return f"Default model · {default_path.name}{missing}"
        if option == UPLOAD_CHOICE:
            return "Upload a checkpoint…"  # a stable label: the widget's value is its label
        m = checkpoint_map(Path(option))
        name = bundled_model_name(Path(option))
        return (f"{name} · {Path(option).name}" if name else _short(Path(option))) + ("" if m is None else f" · mAP {m:.1f}")

    _restore(_W_CHOICE, store.get("checkpoint", DEFAULT_CHOICE), options)
    choice = sb.selectbox("Checkpoint", options, key=_W_CHOICE, format_func=label,
                          on_change=_remember, args=("checkpoint", _W_CHOICE))
    if choice == UPLOAD_CHOICE:
        up = sb.file_uploader("Upload a .safetensors checkpoint", type=["safetensors"], key=_W_UPLOAD)
        if up is not None:
            blob = up.getvalue()
            if not uploaded or uploaded["digest"] != blob_key(blob):
                uploaded = {"name": up.name, "digest": blob_key(blob), "blob": blob}
                st.session_state[_UPLOADED_CKPT] = uploaded

    devices = _device_options()
    _restore(_W_DEVICE, store.get("device", "auto"), devices)
    device = sb.selectbox("Device", devices, key=_W_DEVICE, on_change=_remember, args=("device", _W_DEVICE),
                          format_func=lambda d: f"auto · {_device_name('auto')}" if d == "auto" else _device_name(d))

    if choice == DEFAULT_CHOICE:
        source = ModelSource(DEFAULT_CHOICE, default_path.name, str(default_path))
    elif choice == UPLOAD_CHOICE:
        source = ModelSource(UPLOAD_CHOICE, uploaded["name"], None, uploaded["blob"]) if uploaded else None
    else:
        source = ModelSource("file", _short(Path(choice)), choice)

    state = ModelState(source, device)
    if source is None:
        state.error = "Upload a `.safetensors` checkpoint in the sidebar to use it."
    elif source.kind == DEFAULT_CHOICE and not default_path.is_file():
        state.error = missing_default_message(default_path)
        state.missing_default = True
    else:
        t0 = time.perf_counter()
        try:
            with st.spinner(f"Loading {source.name}…"):
                state.predictor = load_predictor(source, device)
            state.seconds = time.perf_counter() - t0
        except CheckpointError as exc:
            state.error = md(exc)
    _model_card(sb, state)
    return state


def _model_card(sb, state: ModelState) -> None:
    p = state.predictor
    if p is None:
        sb.warning("No model loaded.", icon=":material/warning:")
        return
    sb.caption(f"**{md(state.source.name)}** on **{device_label(p.device)}**")
    sb.markdown("  \n".join(f"{k}: **{md(v)}**" for k, v in describe_model(p).items()))
    with sb.expander("Checkpoint metadata"):
        st.json(p.info.to_metadata(), expanded=1)


def picked_folders() -> list[Path]:
    """The checkpoint folders set in the sidebar (the default ones before the user changed them)."""
    store = st.session_state.get(_STORE) or {}
    return parse_folders(store.get("folders") or folders_text(default_folders()))


def other_models(state: ModelState, folders: Sequence[Path] | None = None) -> list[ModelSource]:
    """Models to put beside the loaded one: the default model and every checkpoint in the folders
    (default: the sidebar's), except the loaded one itself."""
    current = Path(state.source.path).resolve() if state.source and state.source.path else None
    out = []
    default_path = default_checkpoint_path()
    if default_path.is_file() and default_path.resolve() != current:
        out.append(ModelSource(DEFAULT_CHOICE, f"Default model · {default_path.name}", str(default_path)))
    for p in list_checkpoints(picked_folders() if folders is None else folders):
        if p != current and p != default_path.resolve():
            out.append(ModelSource("file", _short(p), str(p)))
    return out


def model_key(source: ModelSource, predictor: Predictor) -> str:
    """The cache key of a model's results (as ModelState.key)."""
    return f"{source.key}@{predictor.device}"


_PROBES = "ram_studio.probes"


def session_probes(model_key_: str, digest: str) -> list:
    """This session's probes of one photo under one model (a list the page appends to)."""
    store = st.session_state.get(_PROBES)
    if not isinstance(store, LRU):
        store = st.session_state[_PROBES] = LRU(RESULTS_PER_SESSION)
    probes = store.get_recent((model_key_, digest))
    if probes is None:
        probes = []
        store.put((model_key_, digest), probes)
    return probes


def require_model(state: ModelState) -> Predictor:
    """The loaded predictor, or a message on the page (not a traceback) and stop the page."""
    if state.predictor is None:
        if state.missing_default or state.source is None:
            st.info(state.error or "No model.", icon=":material/info:")
        else:
            st.error(state.error or "No model.", icon=":material/error:")
        st.stop()
    return state.predictor
