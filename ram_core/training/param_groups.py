"""The optimizer's parameter groups of a head: the companion branch may learn at its own rate.

A RAM head with a companion branch (cfg.companion) is two models on one map, each trained on its own
loss (neither loss reaches the other branch; the companion's prior shares only the frozen ImageNet
classifier).  AdamW is per parameter and there is no gradient clipping, so giving the companion its
own learning rate trains each branch exactly as a run at that branch's rate would (the dropout masks
are drawn in the same order either way).  Why it matters: the strongest baseline, CSRA alone, is best
at a higher rate than the recurrent branch (assets/MODEL_CARD.md, "learning rates").
"""

from __future__ import annotations

import torch


def head_param_groups(head: torch.nn.Module, lr: float, companion_lr: float | None = None) -> list[dict]:
    """AdamW groups for `head`'s trainable parameters: [{"params", "lr": lr}] and, when companion_lr is
    given and the head has a companion branch, a second group with the companion's parameters at
    companion_lr.  A scheduler such as LambdaLR scales each group from its own rate."""
    companion = getattr(head, "companion", None)
    if companion_lr is None or companion is None:
        return [{"params": [p for p in head.parameters() if p.requires_grad], "lr": lr}]
    own = {id(p) for p in companion.parameters()}
    rest = [p for p in head.parameters() if p.requires_grad and id(p) not in own]
    branch = [p for p in companion.parameters() if p.requires_grad]
    return [{"params": rest, "lr": lr}, {"params": branch, "lr": companion_lr}]
