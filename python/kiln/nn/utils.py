"""kiln.nn.utils: clip_grad_norm_ (torch.nn.utils' spelling)."""
from ..optim import clip_grad_norm_

clip_grad_norm = clip_grad_norm_

__all__ = ["clip_grad_norm_", "clip_grad_norm"]
