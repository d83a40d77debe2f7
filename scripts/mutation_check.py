"""Do the model and loss tests catch a wrong model?  Apply each mutation below to a scratch copy of
the project, run the model and loss tests there, and print the mutations no test caught.

    python scripts/mutation_check.py [--only NAME ...] [--list]

Each mutation is one plausible mistake in re-implementing the paper (docs/PAPER.md).  A mutation
"survives" when the tests still pass with it; the script exits 1 if any survives, or if a
mutation's text is no longer found (the code moved: update the mutation, do not drop it).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/test_model.py", "tests/test_paper_model.py", "tests/test_losses.py", "tests/test_fusion_weights.py"]

# name -> (file, text, replacement): the text must occur exactly once.
MUTATIONS: dict[str, tuple[str, str, str]] = {
    "box: x and y swapped": (
        "ram_core/sampler.py",
        "    s_x, s_y, t_x, t_y = transforms.unbind(-1)\n    s_x, s_y = s_x.abs(), s_y.abs()",
        "    s_y, s_x, t_y, t_x = transforms.unbind(-1)\n    s_x, s_y = s_x.abs(), s_y.abs()"),
    "sampler (affine matrix): x and y swapped": (
        "ram_core/sampler.py",
        "    s_x, s_y, t_x, t_y = transforms.unbind(-1)\n    zero = torch.zeros_like(s_x)",
        "    s_y, s_x, t_y, t_x = transforms.unbind(-1)\n    zero = torch.zeros_like(s_x)"),
    "sampler (separable pooling): x and y swapped": (
        "ram_core/sampler.py",
        "wy = interpolation_weights(t[:, 1], t[:, 3], size, features.shape[2])  # (B, r, H)",
        "wy = interpolation_weights(t[:, 0], t[:, 2], size, features.shape[2])  # (B, r, H)"),
    "region pooling (pool_region): x and y swapped": (
        "ram_core/sampler.py",
        "wy = interpolation_weights(t[:, 1], t[:, 3], size, features.shape[2]).mean(1)",
        "wy = interpolation_weights(t[:, 0], t[:, 2], size, features.shape[2]).mean(1)"),
    "LSTM state reset at every step (no memory)": (
        "ram_core/heads/recurrent.py", "            if not cfg.memory:", "            if True:"),
    "LSTM state never carried (h kept, c reset)": (
        "ram_core/heads/recurrent.py", "            h, c = self.lstm(f_k, (h, c))",
        "            h, c = self.lstm(f_k, (h, torch.zeros_like(c)))"),
    "M_0 not the identity": (
        "ram_core/sampler.py", "IDENTITY = (1.0, 1.0, 0.0, 0.0)", "IDENTITY = (0.5, 0.5, 0.0, 0.0)"),
    "step 0's scores in the paper's fusion": (
        "ram_core/heads/recurrent.py", "fused = (logits if cfg.fuse_global else steps).amax(1)",
        "fused = logits.amax(1)"),
    "transforms of steps 0..K-1 reported (constraints on step 0)": (
        "ram_core/heads/recurrent.py", "            if k > 0:\n                transforms.append(transform)",
        "            if k < k_steps:\n                transforms.append(transform)"),
    "anchor constraint summed over the batch": (
        "ram_core/losses.py", "0.5 * ((centres - anchors.to(centres)) ** 2).sum(-1).sum(-1).mean()",
        "0.5 * ((centres - anchors.to(centres)) ** 2).sum(-1).sum(-1).sum()"),
    "anchor constraint averaged over the steps": (
        "ram_core/losses.py", "0.5 * ((centres - anchors.to(centres)) ** 2).sum(-1).sum(-1).mean()",
        "0.5 * ((centres - anchors.to(centres)) ** 2).sum(-1).mean(-1).mean()"),
    "scale constraint summed over the batch": (
        "ram_core/losses.py", "(F.relu(scales.abs() - alpha) ** 2).sum(-1).sum(-1).mean()",
        "(F.relu(scales.abs() - alpha) ** 2).sum(-1).sum(-1).sum()"),
    "scale constraint averaged over the steps": (
        "ram_core/losses.py", "(F.relu(scales.abs() - alpha) ** 2).sum(-1).sum(-1).mean()",
        "(F.relu(scales.abs() - alpha) ** 2).sum(-1).mean(-1).mean()"),
    "positive constraint summed over the batch": (
        "ram_core/losses.py", "F.relu(beta - scales).sum(-1).sum(-1).mean()",
        "F.relu(beta - scales).sum(-1).sum(-1).sum()"),
    "positive constraint averaged over the steps": (
        "ram_core/losses.py", "F.relu(beta - scales).sum(-1).sum(-1).mean()",
        "F.relu(beta - scales).sum(-1).mean(-1).mean()"),
    "scale constraint without |s|": (
        "ram_core/losses.py", "(F.relu(scales.abs() - alpha) ** 2)", "(F.relu(scales - alpha) ** 2)"),
    "classification loss averaged over classes": (
        "ram_core/losses.py", "    return per.sum(1).mean()", "    return per.mean(1).mean()"),
    "classification loss summed over the batch": (
        "ram_core/losses.py", "    return per.sum(1).mean()", "    return per.sum()"),
    "paper loss with a sigmoid instead of a softmax": (
        "ram_core/losses.py", "per = (logits.float().softmax(1) - normalised_targets(targets, mask)) ** 2",
        "per = (torch.sigmoid(logits.float()) - normalised_targets(targets, mask)) ** 2"),
    "paper loss with an un-normalised target": (
        "ram_core/losses.py", "    return t / t.sum(1, keepdim=True).clamp(min=1.0)", "    return t"),
    "localization term not weighted by gamma": (
        "ram_core/losses.py", "total = cls + cfg.gamma * (", "total = cls + ("),
    "scores read from h_k instead of z_k": (
        "ram_core/heads/recurrent.py", "            zs.append(z)", "            zs.append(h)"),
    "M read from h_k instead of z_k": (
        "ram_core/heads/recurrent.py", "transform = self.next_transform(z, k + 1, evidence, visited, explained)",
        "transform = self.next_transform(h, k + 1, evidence, visited, explained)"),
    "z_k without its ReLU": (
        "ram_core/heads/recurrent.py", "nn.Sequential(nn.Linear(cfg.hidden_size, cfg.z_size), nn.ReLU(inplace=True))",
        "nn.Sequential(nn.Linear(cfg.hidden_size, cfg.z_size))"),
    "anchor constraint: step k gets another step's anchor": (
        "ram_core/losses.py", "(centres - anchors.to(centres))", "(centres - anchors.flip(0).to(centres))"),
    "localizer: step k starts at another step's anchor": (
        "ram_core/heads/recurrent.py", "self.localizer(evidence, z, self.anchors[step - 1], visited, explained)",
        "self.localizer(evidence, z, self.anchors[step % len(self.anchors)], visited, explained)"),
    "explained inhibition lowers every class where a step looked, not only the ones it found": (
        "ram_core/heads/recurrent.py", "ev.std(2, keepdim=True).detach() * explained\n",
        "ev.std(2, keepdim=True).detach() * explained.amax(1, keepdim=True)\n"),
    "explained inhibition reads the step's scores without its region classifier": (
        "ram_core/heads/recurrent.py", "                logits = logits + self.region_classifier(region)\n", "                pass\n"),
    "anchored localizer: step k starts at another step's anchor": (
        "ram_core/heads/recurrent.py", "m.new_full((2,), self.cfg.init_scale), self.anchors[step - 1]",
        "m.new_full((2,), self.cfg.init_scale), self.anchors[step % len(self.anchors)]"),
    "W_M not zero at the start": (
        "ram_core/heads/recurrent.py", "nn.init.zeros_(self.localizer.weight)",
        "nn.init.normal_(self.localizer.weight, std=1e-2)"),
    "paper preset: gamma 1": ("ram_core/presets.py", "PAPER_GAMMA = 0.1", "PAPER_GAMMA = 1.0"),
    "paper preset: lambda1 and lambda2 swapped": (
        "ram_core/presets.py", "anchor_weight=PAPER_LAMBDA1, positive_weight=PAPER_LAMBDA2",
        "anchor_weight=PAPER_LAMBDA2, positive_weight=PAPER_LAMBDA1"),
    "paper preset: alpha and beta swapped": (
        "ram_core/presets.py", "alpha=PAPER_ALPHA, beta=PAPER_BETA, anchors=anchors",
        "alpha=PAPER_BETA, beta=PAPER_ALPHA, anchors=anchors"),
    "paper preset: steps start at half scale": (
        "ram_core/presets.py", 'transform_mode="direct", init_scale=1.0', 'transform_mode="direct", init_scale=0.5'),
    "paper preset: BCE": ("ram_core/presets.py", 'classification="softmax_mse", gamma', 'classification="bce", gamma'),
    "paper preset: global step in the fusion": (
        "ram_core/presets.py", "fuse_global=False,  # fused", "fuse_global=True,  # fused"),
    "branch mix: per-class weight on the companion": (
        "ram_core/heads/recurrent.py",
        "    return w * branches[:, 0] + (1 - w) * branches[:, 1]",
        "    return w * branches[:, 1] + (1 - w) * branches[:, 0]"),
    "nested fusion weights: a fold's own photos choose its weights": (
        "ram_core/training/fusion_weights.py",
        "        rest = folds != f\n        out[f] = choose_class_weights(",
        "        rest = folds == folds\n        out[f] = choose_class_weights("),
    "fusion weights: rare classes choose their own too": (
        "ram_core/training/fusion_weights.py",
        "frequent = np.flatnonzero(positives >= min_positives)",
        "frequent = np.flatnonzero(positives >= 0)"),
}


def copy_project(dest: Path) -> None:
    for name in ("ram_core", "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml",):
        shutil.copy2(ROOT / name, dest / name)
    (dest / "assets").symlink_to(ROOT / "assets")  # read-only use: the default model, samples


def run_tests(where: Path) -> tuple[bool, str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
                          cwd=where, capture_output=True, text=True)
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    return proc.returncode == 0, last


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", help="run only the mutations whose names contain these words")
    p.add_argument("--list", action="store_true")
    args = p.parse_args()
    chosen = {k: v for k, v in MUTATIONS.items() if not args.only or any(w in k for w in args.only)}
    if args.list:
        print("\n".join(chosen))
        return 0
    with tempfile.TemporaryDirectory(prefix="ram-mutation-") as tmp:
        base = Path(tmp) / "clean"
        copy_project(base)
        ok, last = run_tests(base)
        if not ok:
            print(f"the tests fail without any mutation ({last}); fix them first")
            return 2
        survivors, stale = [], []
        for i, (name, (file, old, new)) in enumerate(chosen.items(), 1):
            where = Path(tmp) / f"m{i}"
            copy_project(where)
            text = (where / file).read_text()
            if text.count(old) != 1:
                stale.append(name)
                print(f"[{i:2d}/{len(chosen)}] STALE    {name}: its text occurs {text.count(old)} times in {file}")
                continue
            (where / file).write_text(text.replace(old, new))
            t0 = time.perf_counter()
            passed, last = run_tests(where)
            verdict = "SURVIVED" if passed else "caught"
            print(f"[{i:2d}/{len(chosen)}] {verdict:8s} {name}  ({time.perf_counter() - t0:.1f} s)", flush=True)
            if passed:
                survivors.append(name)
            shutil.rmtree(where)
    print(f"\n{len(chosen) - len(survivors) - len(stale)} of {len(chosen)} mutations caught by the model and loss tests.")
    print("surviving mutations:", ", ".join(survivors) if survivors else "none")
    if stale:
        print("stale mutations (text not found):", ", ".join(stale))
    return 1 if survivors or stale else 0


if __name__ == "__main__":
    sys.exit(main())
