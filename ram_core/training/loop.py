"""Training: from a feature cache (frozen backbone, fast on a laptop) or end to end (fine-tuning, GPU).

Writes into the output folder:
    config.json          the RAMConfig and the training options
    log.jsonl            one line per epoch: each loss term, the validation metrics, lr, seconds
    best.safetensors     the checkpoint with the best validation mAP
    last.safetensors     the latest epoch's checkpoint
    resume.pt            optimizer/scheduler state for --resume (read back with weights_only=True)
Under torchrun (WORLD_SIZE > 1) it runs DistributedDataParallel; rank 0 alone writes files.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .. import finite_json
from .. import metrics
from ..checkpoints import _atomic_write, make_provenance, save_checkpoint
from ..config import RAMConfig
from ..distributed_setup import init_process_group, local_rank
from ..errors import CheckpointError, RAMError
from ..inference import ImageTransform, autocast_for
from ..losses import ram_loss
from ..model import RAMModel, build_head, init_prior_from_backbone, probabilities
from ..feature_norm import set_feature_stats
from .feature_cache import FeatureCache
from .param_groups import head_param_groups


@dataclass
class TrainOptions:
    out_dir: str
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    companion_lr: float | None = None  # the companion branch's own rate (param_groups.py); None: lr
    backbone_lr: float = 1e-4  # fine-tuning only
    weight_decay: float = 1e-4
    warmup_epochs: int = 1
    seed: int = 0
    views: tuple[str, ...] = ("orig", "hflip")  # cached training picks one view per image per epoch
    use_cache: bool = True  # False: images through the backbone every step (fine-tuning)
    cache_dir: str = "cache/features"
    workers: int = 0
    device: str = "auto"
    resume: bool = False
    backbone_weights: str | None = None
    data_description: str = ""
    min_positives: int = 1  # classes with fewer validation positives are left out of the mAP
    # what data the run used (kind, root, splits, a held-out fraction and its seed): kept in config.json
    data: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] | None = field(default=None, repr=False)
    # called with a dict between batches: {"phase": "features", "dataset", "view", "done", "total"},
    # {"phase": "epoch", "epoch", "epochs", "batch", "batches"} and {"phase": "epoch_end", "epoch",
    # "epochs", "record"} once the epoch is saved.  It may raise to stop the run (the app's Stop): what
    # is on disk is then the last finished epoch, which --resume continues from.
    progress: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False)


class CachedFeatures(Dataset):
    """Items (features (C, h, w), target (C,), mask (C,), index) from cached views."""

    def __init__(self, views: list[np.ndarray], targets: np.ndarray, masks: np.ndarray, seed: int) -> None:
        self.views = [torch.from_numpy(np.ascontiguousarray(v)) for v in views]  # each (N, C, h, w) fp16
        self.targets = torch.from_numpy(targets.astype(np.float32))
        self.masks = torch.from_numpy(masks.astype(np.float32))
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        # the view is a function of (seed, epoch, i): reproducible, and identical across DDP ranks
        v = (hash((self.seed, self.epoch, i)) & 0xFFFF) % len(self.views) if len(self.views) > 1 else 0
        return self.views[v][i].float(), self.targets[i], self.masks[i], i


def _distributed(use_cuda: bool) -> tuple[int, int]:
    """(rank, world size): torchrun's process group (ram_core/distributed_setup.py), or (0, 1)."""
    joined = init_process_group(use_cuda)
    return joined if joined is not None else (0, 1)


def _lr_lambda(epochs: int, warmup: int, steps_per_epoch: int) -> Callable[[int], float]:
    total = max(1, epochs * steps_per_epoch)
    warm = warmup * steps_per_epoch

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return f


@torch.inference_mode()
def head_scores(head: torch.nn.Module, feats: np.ndarray, device: torch.device, batch_size: int = 64):
    """Run a head over cached features (N, C, h, w) -> (fused probs (N, C), RAMOutput pieces)."""
    head.eval()
    fused, steps, transforms = [], [], []
    for s in range(0, len(feats), batch_size):
        x = torch.from_numpy(np.asarray(feats[s:s + batch_size])).to(device).float()
        out = head(x)
        fused.append(probabilities(out.logits, head.cfg).cpu())
        steps.append(probabilities(out.step_logits, head.cfg).cpu())
        transforms.append(out.transforms.cpu())
    return torch.cat(fused).numpy(), torch.cat(steps).numpy(), torch.cat(transforms).numpy()


def validation_metrics(scores: np.ndarray, targets: np.ndarray, masks: np.ndarray, class_names: list[str],
                       min_positives: int = 1) -> dict[str, Any]:
    report = metrics.evaluate_scores(scores, targets, class_names, mask=masks)
    positives = ((targets > 0) & (masks > 0)).sum(0)
    ap = metrics.per_class_ap(scores, targets, masks)
    keep = positives >= min_positives
    report["mAP_selected"] = float(np.nanmean(ap[keep]) * 100) if keep.any() else None
    report["selected_classes"] = [c for c, k in zip(class_names, keep) if k]
    return report


class TrainingDiverged(RAMError):
    """The loss became NaN or infinite: training stops, and the last good checkpoint stays."""


def train(cfg: RAMConfig, opts: TrainOptions, train_set, val_set=None) -> dict[str, Any]:
    """Train a head (or the whole model) and return a summary: best mAP, paths, history."""
    from ..backbones import build_backbone
    from ..inference import resolve_device

    device = resolve_device(opts.device)
    rank, world = _distributed(device.type == "cuda")
    log = opts.log or (print if rank == 0 else (lambda *_: None))
    progress = opts.progress if rank == 0 and opts.progress is not None else (lambda _event: None)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank())
    torch.manual_seed(opts.seed)
    np.random.seed(opts.seed)
    out = Path(opts.out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(out / "config.json", json.dumps(
            {"config": cfg.to_dict(), "options": {k: v for k, v in asdict(opts).items() if k not in ("log", "progress")}},
            indent=2, default=str).encode())

    if list(train_set.class_names) != list(cfg.class_names):
        raise ValueError("the config's class names differ from the training set's")
    backbone = build_backbone(cfg.backbone, opts.backbone_weights)
    head = build_head(cfg)
    init_prior_from_backbone(head, backbone)
    model = RAMModel(cfg, backbone, head).to(device)
    weights_id = opts.backbone_weights or "default"

    # --- data ---
    val_feats = None
    if opts.use_cache:
        cache = FeatureCache(opts.cache_dir)

        def cached(ds, view):
            # rank 0 builds the cache; the others wait, then read it
            if world > 1 and rank != 0:
                dist.barrier()
            feats = cache.get_or_build(backbone, ds, cfg, view, device, weights_id, log=log,
                                       progress=lambda done, total: progress(
                                           {"phase": "features", "dataset": ds.name, "view": view,
                                            "done": done, "total": total}))
            if world > 1 and rank == 0:
                dist.barrier()
            return feats

        train_data = CachedFeatures([cached(train_set, v) for v in opts.views], train_set.targets,
                                    train_set.masks, opts.seed)
        if val_set is not None:
            val_feats = cached(val_set, "orig")
        set_feature_stats(model.head, train_data.views[0])  # cfg.feature_norm only
        model.backbone.cpu()  # not needed again: free the device for the head
        trainable = model.head
    else:
        train_set.transform = ImageTransform(cfg, hflip=False)
        train_data = _FlipAugment(train_set, "hflip" in opts.views, opts.seed)
        if cfg.feature_norm:  # statistics of the starting backbone's map on up to 256 training photos
            model.eval()
            with torch.no_grad():
                first = [model.backbone(train_set[i][0][None].to(device)).float().cpu()
                         for i in range(min(256, len(train_set)))]
            set_feature_stats(model.head, torch.cat(first))
        trainable = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(trainable, device_ids=[device.index] if device.type == "cuda" else None)
        sampler = DistributedSampler(train_data, num_replicas=world, rank=rank, shuffle=True, seed=opts.seed)
    else:
        net, sampler = trainable, None
    gen = torch.Generator().manual_seed(opts.seed)
    loader = DataLoader(train_data, batch_size=opts.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=opts.workers if not opts.use_cache else 0, drop_last=False, generator=gen,
                        pin_memory=device.type == "cuda")

    # --- optimisation ---
    groups = head_param_groups(model.head, opts.lr, opts.companion_lr)
    if not opts.use_cache and not cfg.freeze_backbone:
        groups.append({"params": [p for p in model.backbone.parameters() if p.requires_grad], "lr": opts.backbone_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=opts.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(opts.epochs, opts.warmup_epochs, len(loader)))
    anchors = torch.tensor(cfg.anchors, device=device) if cfg.num_attention_steps else torch.zeros(0, 2, device=device)

    start_epoch, best, history = 0, float("-inf"), []
    resume_path = out / "resume.pt"
    if opts.resume and resume_path.is_file():
        try:
            state = torch.load(resume_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{resume_path} is damaged and cannot be resumed from ({type(exc).__name__}); "
                                  "start again without --resume, or from another folder") from exc
        saved = RAMConfig.from_dict(json.loads(state.get("config", "{}"))) if state.get("config") else None
        if saved is not None and saved != cfg:
            diff = [f.name for f in fields(RAMConfig) if getattr(saved, f.name) != getattr(cfg, f.name)]
            detail = (f" (classes {saved.class_names} then, {cfg.class_names} now)" if "class_names" in diff else "")
            raise CheckpointError(f"{resume_path} was written for another model: {', '.join(diff)} differ{detail}; "
                                  "resume with the same data and options, or train into another --out folder")
        model.head.load_state_dict(state["head"])
        if "backbone" in state:
            model.backbone.load_state_dict(state["backbone"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best = int(state["epoch"]) + 1, float(state["best"])
        history = json.loads(state["history"])
        log(f"resumed from {resume_path} after epoch {start_epoch} (best mAP so far {best:.2f})")

    from tqdm.auto import tqdm

    for epoch in range(start_epoch, opts.epochs):
        t0 = time.perf_counter()
        if sampler is not None:
            sampler.set_epoch(epoch)
        if hasattr(train_data, "epoch"):
            train_data.epoch = epoch
        # every epoch's randomness (shuffling, dropout) derives from (seed, epoch): a resumed run
        # continues exactly as the uninterrupted one would have
        gen.manual_seed(opts.seed * 1000 + epoch)
        torch.manual_seed(opts.seed * 1000 + epoch)
        model.train()
        sums: dict[str, float] = {}
        n = 0
        progress({"phase": "epoch", "epoch": epoch + 1, "epochs": opts.epochs, "batch": 0, "batches": len(loader)})
        for batch, (x, y, m, _) in enumerate(tqdm(loader, desc=f"epoch {epoch + 1}/{opts.epochs}", leave=False,
                                                  disable=None if rank == 0 else True), start=1):
            x, y, m = x.to(device, non_blocking=True), y.to(device), m.to(device)
            with autocast_for(device):
                output = net(x)
            terms = ram_loss(output, y, cfg.loss, anchors, m)
            if not bool(torch.isfinite(terms.total.detach())):
                # before the step: the weights stay those of the last good batch, the checkpoints those
                # of the last finished epoch
                kept = out / "last.safetensors"
                raise TrainingDiverged(
                    f"epoch {epoch + 1}, batch {batch}: the loss is {float(terms.total.detach()):g} "
                    "(not a finite number); "
                    "training stopped. " + (f"The last good checkpoint is {kept} (epoch {len(history)})."
                                            if history and kept.is_file() else "No checkpoint was written.")
                    + " Try a lower --lr, or look for broken inputs in the data.")
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            scheduler.step()
            for k, v in terms.as_floats().items():
                sums[k] = sums.get(k, 0.0) + v * len(x)
            n += len(x)
            progress({"phase": "epoch", "epoch": epoch + 1, "epochs": opts.epochs, "batch": batch,
                      "batches": len(loader)})
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                                  **{f"loss_{k}": v / max(n, 1) for k, v in sums.items()}}
        if rank == 0:
            if val_set is not None:
                scores = (head_scores(model.head, val_feats, device)[0] if val_feats is not None
                          else _image_scores(model, val_set, cfg, device))
                report = validation_metrics(scores, val_set.targets, getattr(val_set, "eval_masks", val_set.masks),
                                            cfg.class_names, opts.min_positives)
                record.update({"val_mAP": report["mAP"], "val_mAP_selected": report["mAP_selected"],
                               "val_CF1": report["CF1"], "val_OF1": report["OF1"]})
                score = report["mAP_selected"] if report["mAP_selected"] is not None else -1.0
            else:
                score = -record["loss_total"]
            record["seconds"] = round(time.perf_counter() - t0, 2)
            history.append(record)
            prov = make_provenance(opts.data_description, root=(opts.data or {}).get("root"), epoch=epoch + 1)
            save_checkpoint(out / "last.safetensors", model, provenance=prov)
            if score > best:
                best = score
                save_checkpoint(out / "best.safetensors", model, provenance=prov,
                                evaluation={k: record[k] for k in record if k.startswith("val_")} or None)
            state = {"epoch": epoch, "best": best, "head": model.head.state_dict(),
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "history": finite_json.dumps(history), "config": cfg.to_json()}
            if not cfg.freeze_backbone:
                state["backbone"] = model.backbone.state_dict()
            _save_torch_atomic(state, resume_path)
            # the log is rewritten whole from the history saved with the resume state, so a kill at
            # any point never leaves it with an epoch missing or twice
            _atomic_write(out / "log.jsonl", "".join(finite_json.dumps(r) + "\n" for r in history).encode())
            val_txt = f"  val mAP {record['val_mAP_selected']:.2f}" if record.get("val_mAP_selected") is not None else ""
            log(f"epoch {epoch + 1}/{opts.epochs}  loss {record['loss_total']:.4f} "
                f"(cls {record['loss_classification']:.4f}){val_txt}  {record['seconds']:.1f}s")
            progress({"phase": "epoch_end", "epoch": epoch + 1, "epochs": opts.epochs, "record": record})
        if world > 1:
            dist.barrier()
    best_path = out / "best.safetensors"
    written = bool(history) and best_path.is_file()  # an epoch finished (now or before a resume) and wrote it
    return {"best": best, "best_checkpoint": str(best_path) if written else None, "history": history, "model": model}


class _FlipAugment(Dataset):
    """Images for end-to-end training, each flipped horizontally with probability 1/2."""

    def __init__(self, dataset, flip: bool, seed: int) -> None:
        self.dataset, self.flip, self.seed, self.epoch = dataset, flip, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x, y, m, idx = self.dataset[i]
        if self.flip and (hash((self.seed, self.epoch, i)) & 1):
            x = x.flip(-1)
        return x, y, m, idx


@torch.inference_mode()
def _image_scores(model: RAMModel, dataset, cfg: RAMConfig, device: torch.device, batch_size: int = 16) -> np.ndarray:
    dataset.transform = ImageTransform(cfg)
    model.eval()
    out = []
    for x, *_ in DataLoader(dataset, batch_size=batch_size):
        with autocast_for(device):
            out.append(probabilities(model(x.to(device)).logits, cfg).cpu())
    return torch.cat(out).numpy()


def _save_torch_atomic(obj: Any, path: Path) -> None:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    _atomic_write(path, buf.getvalue())
