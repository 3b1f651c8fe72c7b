"""The learning-rate schedule, framework-free: torch's ``CosineAnnealingLR`` stepped once per optimizer step.

``CosineSchedule`` repeats torch's own recurrence (``lr_t = (1 + cos(pi t / T)) / (1 + cos(pi (t - 1) / T))
lr_{t-1}``, in Python floats), so the MindSpore trainer's learning rates equal torch's bit for bit, and its
``state_dict`` has the keys of torch's scheduler state: either framework resumes from the other's checkpoint.
"""

from __future__ import annotations

import math


class CosineSchedule:
    """Cosine annealing from ``base_lr`` to ``eta_min`` over ``t_max`` steps; ``lr`` is the rate for the next step."""

    def __init__(self, base_lr: float, t_max: int, eta_min: float = 0.0):
        self.base_lr, self.t_max, self.eta_min = float(base_lr), int(t_max), float(eta_min)
        self.last_epoch = 0
        self.lr = self.base_lr

    def step(self) -> float:
        """Advance one optimizer step; returns the new learning rate (torch's ``CosineAnnealingLR.get_lr``)."""
        self.last_epoch += 1
        t, t_max, eta_min = self.last_epoch, self.t_max, self.eta_min
        if (t - 1 - t_max) % (2 * t_max) == 0:
            self.lr = self.lr + (self.base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        else:
            ratio = (1 + math.cos(math.pi * t / t_max)) / (1 + math.cos(math.pi * (t - 1) / t_max))
            self.lr = ratio * (self.lr - eta_min) + eta_min
        return self.lr

    def state_dict(self) -> dict:
        """torch's scheduler state keys (``load_state_dict`` of ``CosineAnnealingLR`` takes it as is)."""
        return {
            "T_max": self.t_max,
            "eta_min": self.eta_min,
            "base_lrs": [self.base_lr],
            "last_epoch": self.last_epoch,
            "_step_count": self.last_epoch + 1,
            "_last_lr": [self.lr],
        }

    def load_state_dict(self, state: dict) -> None:
        """From ``state_dict()`` or a torch ``CosineAnnealingLR.state_dict()``."""
        self.t_max, self.eta_min = int(state["T_max"]), float(state["eta_min"])
        self.base_lr = float(state["base_lrs"][0])
        self.last_epoch = int(state["last_epoch"])
        self.lr = float(state["_last_lr"][0])
