"""RAM Studio: a PyTorch implementation of "Multi-label Image Recognition by Recurrently Discovering
Attentional Regions" (Wang, Chen, Li, Xu, Lin; ICCV 2017)."""

__version__ = "0.1.0"
