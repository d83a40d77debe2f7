"""The recurrent attention head's cost against the backbone's forward pass, at batch 1 and 32.

    python benchmarks/bench_attention.py [--batches 1 32] [--repeats 10 3] [--profile]

The shipped model's configuration (benchmarks/common.py: input 576, K = 7, 7 x 7 regions, "flatten",
"evidence", ImageNet prior, CSRA companion) on EfficientNet-Lite0 with its package weights.  For each batch size it times
the backbone on a random batch, then the head on the backbone's feature map, and prints the head's
cost as a fraction of the backbone's (goal: at most 10 %).  The head's time is split by module (forward
hooks) with the rest (the samplers, the loop's small tensor operations) as "other"; --profile adds
torch.profiler's top operators.

--alternatives times a rewrite of the head's forward with the same weights and the same outputs
(checked), as suggestions for ram_core/model.py:
  * "logsumexp by max": torch.logsumexp replaced by max + log(sum(exp(x - max))); on this torch build
    torch.logsumexp over the localizer's small (B, 20, 196) tensor costs milliseconds with 2 threads;
  (an earlier second suggestion, computing every step's class scores after the recurrence in one
  product, is now how ram_core/model.py does it.)
--variants NAME=VALUE[,NAME=VALUE] ... times heads of other configurations (random weights, other
outputs) on the same features, e.g. --variants region_channels=32 hidden_size=256, to price a change.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

from common import interleaved, machine, shipped_config


def module_breakdown(head: torch.nn.Module, features: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds per call of head(features) spent in each direct child module (and in 'other')."""
    spent: dict[str, float] = defaultdict(float)
    starts: dict[str, float] = {}
    handles = []
    for name, module in head.named_children():
        handles.append(module.register_forward_pre_hook(lambda m, a, name=name: starts.__setitem__(name, time.perf_counter())))
        handles.append(module.register_forward_hook(
            lambda m, a, o, name=name: spent.__setitem__(name, spent[name] + time.perf_counter() - starts[name])))
    # the evidence map is a method of the localizer, not its forward: time its conv on its own
    evidence = getattr(getattr(head, "localizer", None), "evidence", None)
    if evidence is not None:
        handles.append(evidence.register_forward_pre_hook(lambda m, a: starts.__setitem__("evidence map", time.perf_counter())))
        handles.append(evidence.register_forward_hook(
            lambda m, a, o: spent.__setitem__("evidence map", spent["evidence map"] + time.perf_counter() - starts["evidence map"])))
    total = 0.0
    try:
        with torch.inference_mode():
            head(features)
            spent.clear()
            for _ in range(repeats):
                t0 = time.perf_counter()
                head(features)
                total += time.perf_counter() - t0
    finally:
        for h in handles:
            h.remove()
    out = {k: v / repeats for k, v in spent.items()}
    out["other (sampling, loop)"] = total / repeats - sum(out.values())
    out["total"] = total / repeats
    return out


def logsumexp_by_max(x: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """torch.logsumexp(x, dim) in elementary operations (x finite)."""
    m = x.amax(dim, keepdim=True)
    out = (x - m).exp().sum(dim, keepdim=True).log() + m
    return out if keepdim else out.squeeze(dim)


def with_logsumexp_by_max(fn):
    real = torch.logsumexp
    torch.logsumexp = logsumexp_by_max
    try:
        return fn()
    finally:
        torch.logsumexp = real


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--repeats", type=int, nargs="+", default=[10, 3], help="timed runs per batch size")
    p.add_argument("--profile", action="store_true", help="also print torch.profiler's top operators of the head")
    p.add_argument("--alternatives", action="store_true", help="also time the head with logsumexp by max")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: this process's CPU time (use with --threads 1 on a busy machine)")
    p.add_argument("--variants", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="also time heads with these config changes (one head per change)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from ram_core.backbones import PACKAGE_WEIGHTS
    from ram_core.inference import prepare_model
    from ram_core.model import build_model

    torch.manual_seed(0)
    cfg = shipped_config()
    model = prepare_model(build_model(cfg, PACKAGE_WEIGHTS), torch.device("cpu"))
    print(machine())
    print(f"clock: {args.clock} time")
    print(f"{cfg.backbone}, input {cfg.input_size}, K = {cfg.num_steps}, region {cfg.region_size}, "
          f"{cfg.region_encoder}, {cfg.transform_mode}, prior {'on' if cfg.imagenet_groups else 'off'}, "
          f"{sum(p.numel() for p in model.head.parameters()) / 1e6:.2f} M head parameters")
    repeats = dict(zip(args.batches, args.repeats + [args.repeats[-1]] * len(args.batches)))
    rows = []
    for b in args.batches:
        x = torch.randn(b, 3, cfg.input_size, cfg.input_size).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            feats = model.backbone(x)
            fns = {"backbone": lambda: model.backbone(x), "head": lambda: model.head(feats)}
            if args.alternatives:
                ref = model.head(feats)
                for name, fn in (("logsumexp by max", lambda: with_logsumexp_by_max(lambda: model.head(feats))),):
                    out = fn()
                    for f in ("logits", "global_logits", "step_logits", "transforms"):
                        assert torch.allclose(getattr(out, f), getattr(ref, f), atol=1e-4, rtol=1e-4), (name, f)
                    fns[name] = fn
            from ram_core.model import build_head

            for change in args.variants:  # "a=1" or "a=1,b=2"
                fields = dict(part.split("=", 1) for part in change.split(","))
                variant = build_head(cfg.replace(**{f: type(getattr(cfg, f))(v) for f, v in fields.items()})).eval()
                fns[change] = lambda variant=variant: variant(feats)
            t = interleaved(fns, repeats[b], clock=args.clock)
        t_backbone, t_head = t["backbone"][0], t["head"][0]
        parts = module_breakdown(model.head, feats, max(repeats[b], 3))
        rows.append((b, t_backbone, t_head))
        print(f"\nbatch {b}: feature map {tuple(feats.shape[1:])}")
        print(f"  backbone {1000 * t_backbone:9.1f} ms   ({1000 * t_backbone / b:.1f} ms/image; "
              f"median {1000 * t['backbone'][1]:.1f} ms)")
        print(f"  head     {1000 * t_head:9.1f} ms   ({1000 * t_head / b:.2f} ms/image; median {1000 * t['head'][1]:.1f} ms)")
        print(f"  head / backbone = {t_head / t_backbone:.3f}  ({'within' if t_head <= 0.1 * t_backbone else 'OVER'} "
              "the 10 % goal)")
        for name in ("logsumexp by max", "+ scores after the loop", *args.variants):
            if name in t:
                alt = t[name][0]
                same = "same outputs" if name not in args.variants else "another model"
                print(f"  head, {name:24s} {1000 * alt:8.1f} ms: head / backbone = {alt / t_backbone:.3f} "
                      f"({t_head / alt:.1f}x faster head, {same})")
        print("  head by part (ms): " + ", ".join(f"{k} {1000 * v:.2f}" for k, v in
                                                 sorted(parts.items(), key=lambda kv: -kv[1]) if k != "total"))
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(3):
                    model.head(feats)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    print("\nsummary: " + "; ".join(f"batch {b}: head {1000 * h:.1f} ms vs backbone {1000 * bb:.1f} ms = "
                                   f"{100 * h / bb:.1f} %" for b, bb, h in rows))


if __name__ == "__main__":
    main()
