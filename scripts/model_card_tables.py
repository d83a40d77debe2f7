"""Print the model card's tables from the bundled evaluations and the ablation results.

    python scripts/model_card_tables.py [runs/ablations_a runs/ablations_b ...]
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fmt(v, nd=1):
    return "–" if v is None else f"{v:.{nd}f}"


def main() -> None:
    ram = json.loads((ROOT / "assets/evaluations/default_val/report.json").read_text())
    base = json.loads((ROOT / "assets/evaluations/baseline_val/report.json").read_text())
    print("| | RAM (default) | baseline |\n|---|---|---|")
    for key in ("mAP", "CF1", "OF1"):
        print(f"| {key} (all {ram['num_classes_evaluated']} classes with positives) | {fmt(ram[key], 2)} | {fmt(base[key], 2)} |")
    for key in ("CF1", "OF1"):
        print(f"| top-3 {key} | {fmt(ram['top3'][key], 2)} | {fmt(base['top3'][key], 2)} |")
    hits = ram["box_hit_rates"]
    print(f"\nbox hits: own {hits['hit_rate']:.1f}% other {hits['hit_rate_other_photo']:.1f}% per step "
          f"{[round(x, 1) for x in hits['per_step']]} vs {[round(x, 1) for x in hits['per_step_other_photo']]}")
    print(f"global step alone mAP {fmt(ram.get('global_mAP'), 2)}; each step alone {ram.get('step_mAP')}")
    sel = [c for c in ram["class_names"] if ram["num_positives"][c] >= 5]
    mean = lambda r: sum(r["per_class_ap"][c] for c in sel) / len(sel)  # noqa: E731
    print(f"mAP over the {len(sel)} classes with >= 5 positives: RAM {mean(ram):.2f} baseline {mean(base):.2f}\n")
    print("| class | val positives | RAM AP | baseline AP | difference |\n|---|---|---|---|---|")
    for c in ram["class_names"]:
        a, b = ram["per_class_ap"][c], base["per_class_ap"][c]
        d = None if a is None or b is None else a - b
        print(f"| {c} | {ram['num_positives'][c]} | {fmt(a)} | {fmt(b)} | {'' if d is None else f'{d:+.1f}'} |")
    for folder in sys.argv[1:]:
        print()
        print((Path(folder) / "results.md").read_text())


if __name__ == "__main__":
    main()
