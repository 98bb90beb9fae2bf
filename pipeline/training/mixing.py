"""MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019) on a batch, with soft targets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Mixer:
    """Mixes ``mix_prob`` of the batches; with both alphas set, MixUp or CutMix at random."""

    n_classes: int
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    @property
    def active(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixed images and targets: probability rows that sum to 1."""
        targets = F.one_hot(y, self.n_classes).float()
        if not self.active or self.rng.random() >= self.mix_prob:
            return x, targets
        perm = torch.as_tensor(self.rng.permutation(len(x)), device=x.device)
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or self.rng.random() < 0.5)
        if use_cutmix:
            lam = self.rng.beta(self.cutmix_alpha, self.cutmix_alpha)
            top, bottom, left, right = self._box(x.shape[-2], x.shape[-1], lam)
            x = x.clone()
            x[..., top:bottom, left:right] = x[perm][..., top:bottom, left:right]
            # the pasted area decides the label share, whatever lam asked for
            lam = 1 - (bottom - top) * (right - left) / (x.shape[-2] * x.shape[-1])
        else:
            lam = self.rng.beta(self.mixup_alpha, self.mixup_alpha)
            x = lam * x + (1 - lam) * x[perm]
        return x, lam * targets + (1 - lam) * targets[perm]

    def _box(self, h: int, w: int, lam: float) -> tuple[int, int, int, int]:
        cut = np.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(self.rng.integers(h)), int(self.rng.integers(w))
        return (
            max(cy - ch // 2, 0),
            min(cy + ch // 2, h),
            max(cx - cw // 2, 0),
            min(cx + cw // 2, w),
        )
