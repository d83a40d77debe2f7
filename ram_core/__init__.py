"""RAM Studio: a PyTorch implementation of "Multi-label Image Recognition by Recurrently Discovering
Attentional Regions" (Wang, Chen, Li, Xu, Lin; ICCV 2017)."""

__version__ = "0.1.0"

import os as _os

# torch's OpenMP workers spin after every parallel operator; on a busy machine the spinning worker
# takes the core the next small operator needs (the recurrent head is ~100 small operators per
# image): up to 7x slower heads and 19x slower warm predictions (BENCHMARKS.md).  Idle workers sleep
# instead; a user's own setting is kept.  Effective when ram_core is imported before torch.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
