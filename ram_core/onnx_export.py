"""A checkpoint as one ONNX graph: preprocessed images -> fused scores, global scores, step scores, transforms.

The whole model (backbone + head) is exported with a dynamic batch.  The spatial transformer is
exported through its separable form (sampler.sample_region_separable: two small matrix products per
region) because the exporters have no affine_grid; the values are the same.  The scores are
probabilities (the model's sigmoid or softmax applied), so a runtime needs nothing from ram_core but
the preprocessing, which the graph's metadata describes (input size, mean, std, class names).
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .config import RAMConfig
from .errors import RAMError
from .model import RAMModel, probabilities

INPUT_NAME = "images"
OUTPUT_NAMES = ("scores", "global_scores", "step_scores", "transforms")
OPSET = 17


class ExportError(RAMError):
    """The model cannot be exported (onnx missing, an operator the exporter refuses)."""


class ScoresModel(nn.Module):
    """RAMModel -> a tuple of probabilities and transforms, the exported graph's outputs.

    images (B, 3, S, S) normalised -> scores (B, C), global_scores (B, C), step_scores (B, K, C),
    transforms (B, K, 4) as (s_x, s_y, t_x, t_y).
    """

    def __init__(self, model: RAMModel) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).float().eval()
        for module in self.model.modules():
            if hasattr(module, "separable"):  # the head's region encoder: no affine_grid
                module.separable = True

    def forward(self, images: torch.Tensor):
        cfg: RAMConfig = self.model.cfg
        out = self.model(images)
        return (probabilities(out.logits, cfg), probabilities(out.global_logits, cfg),
                probabilities(out.step_logits, cfg), out.transforms)


def onnx_metadata(model: RAMModel) -> dict[str, str]:
    cfg = model.cfg
    return {
        "ram_studio.class_names": json.dumps(list(cfg.class_names)),
        "ram_studio.input_size": str(cfg.input_size),
        "ram_studio.mean": json.dumps(list(cfg.mean)),
        "ram_studio.std": json.dumps(list(cfg.std)),
        "ram_studio.num_steps": str(cfg.num_steps if cfg.head == "ram" else 0),
        "ram_studio.score_activation": cfg.score_activation,
        "ram_studio.outputs": ", ".join(OUTPUT_NAMES),
    }


def export_onnx(model: RAMModel, path: str | os.PathLike, opset: int = OPSET) -> Path:
    """Write `model` to `path` as ONNX (dynamic batch) with its preprocessing in the metadata."""
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'ram-studio[onnx]' "
                          "(or pip install onnx onnxruntime)") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ScoresModel(model).cpu()  # a copy: the caller's model stays on its device
    s = model.cfg.input_size
    example = torch.zeros(2, 3, s, s)
    dynamic = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(wrapper, (example,), str(tmp), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                              dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True)
        graph = onnx.load(str(tmp))
        for key, value in onnx_metadata(model).items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(tmp))
        os.replace(tmp, path)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds; name the model and the cause
        raise ExportError(f"could not export to ONNX: {type(exc).__name__}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session for an exported model."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("running an ONNX model needs onnxruntime: pip install onnxruntime") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
