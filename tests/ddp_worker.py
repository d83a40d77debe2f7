"""Run by test_ddp.py under torchrun: a few DDP training steps, then each rank dumps its head."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ram_core.config import RAMConfig  # noqa: E402
from ram_core.data.voc import VOCDataset  # noqa: E402
from ram_core.training.loop import TrainOptions, train  # noqa: E402


def main(root: str, out: str) -> None:
    torch.set_num_threads(1)
    classes = (Path(root) / "classes.txt").read_text().split()
    ds = VOCDataset(root, "train", class_names=classes)
    cfg = RAMConfig(class_names=classes, input_size=64, num_steps=2, region_size=2, embed_dim=16, hidden_size=16,
                    region_encoder="flatten", region_channels=8, dropout=0.2)
    result = train(cfg, TrainOptions(out_dir=out, epochs=2, batch_size=4, cache_dir=f"{out}/cache", device="cpu",
                                     log=lambda *_: None), ds)
    rank = torch.distributed.get_rank()
    torch.save({k: v.clone() for k, v in result["model"].head.state_dict().items()}, f"{out}/head_rank{rank}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
