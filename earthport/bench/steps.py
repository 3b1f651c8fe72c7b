"""What ``earthport bench`` measures, framework-free: the run's spec, the steps a framework builds, the inputs.

Each framework backend builds the steps (``bench_steps(spec)``, chosen by ``workflows.bench``), so this module
and whoever imports it never load a framework; only the worker process does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import numpy as np

from earthport.config import DEVICES, FRAMEWORKS, MS_MODES, PRECISIONS
from earthport.errors import EarthportError
from earthport.models.base import ModelSpec
from earthport.models.registry import DEFAULT as DEFAULT_MODEL

# One year of 6-hourly fields: FourCastNet's sampling of ERA5 (its training set is 1979-2015, 37 such years).
DEFAULT_DATASET_SIZE = 1460


@dataclass(frozen=True)
class BenchSpec:
    """One ``earthport bench`` run. ``energy``: "auto", "none" or meter names "nvml,rapl"; ``tdp_watts``: add a
    labelled estimate (TDP x time); ``compile``: torch.compile (torch only); ``threads``: CPU threads (None:
    the framework's default); ``budget_s``: stop timing a phase after this many seconds of timed steps;
    ``activation_checkpointing``: the training step recomputes the model's blocks in the backward (torch's
    checkpointing, MindSpore's recompute), as ``TrainConfig.activation_checkpointing``."""

    model: str = DEFAULT_MODEL
    preset: str = "tiny"
    framework: str = "torch"
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 1
    repeats: int = 20
    warmup: int = 3
    dataset_size: int = DEFAULT_DATASET_SIZE
    energy: str = "auto"
    tdp_watts: float | None = None
    ms_mode: str = "graph"
    compile: bool = False
    threads: int | None = None
    budget_s: float | None = None
    seed: int = 0
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        for name, allowed in (("framework", FRAMEWORKS), ("device", DEVICES), ("precision", PRECISIONS),
                              ("ms_mode", MS_MODES)):  # fmt: skip
            if getattr(self, name) not in allowed:
                raise EarthportError(f"bench {name} {getattr(self, name)!r}: expected one of {list(allowed)}")
        for name in ("batch_size", "repeats", "dataset_size"):
            if getattr(self, name) < 1:
                raise EarthportError(f"bench {name} {getattr(self, name)}: expected 1 or more")
        if self.warmup < 1:
            raise EarthportError(
                f"bench warmup {self.warmup}: expected 1 or more (the first step compiles graphs and allocates "
                "memory; timing it would measure that, not the step)"
            )
        if self.compile and self.framework != "torch":
            raise EarthportError("--compile is torch.compile; MindSpore compiles with --ms-mode graph (its default)")
        if self.tdp_watts is not None and self.tdp_watts <= 0:
            raise EarthportError(f"energy estimate tdp={self.tdp_watts}: expected a positive number of watts")
        from earthport.bench.energy import meter_names

        meter_names(self.energy)  # unknown meter names fail here, before a worker starts
        if self.threads is not None and self.threads < 1:
            raise EarthportError(f"threads {self.threads}: expected 1 or more")

    @property
    def mode(self) -> str:
        """How the framework runs the steps: MindSpore graph | pynative, torch eager | compiled."""
        if self.framework == "mindspore":
            return self.ms_mode
        return "compiled" if self.compile else "eager"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BenchSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class BenchSteps:
    """A framework's steps on one fixed batch, and what the record needs to know about where they ran.

    ``infer``: one forward pass without gradients in eval mode; ``train``: forward, masked MSE, backward and the
    trainer's optimizer step; ``sync``: waits until the device's queued work is done (the timing fence).
    """

    infer: Callable[[], object]
    train: Callable[[], object]
    sync: Callable[[], None]
    device: dict  # name, backend, description
    threads: dict
    peak_memory: Callable[[], dict]  # device_peak_mb, host_peak_rss_mb
    reset_peak_memory: Callable[[], None]


def random_batch(spec: ModelSpec, config: object, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed random (inputs [batch, in, H, W], targets [batch, out, H, W]) float32 for the model ``spec`` with
    ``config``; the same in every framework."""
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal(spec.input_shape(config, batch_size), dtype=np.float32)
    targets = rng.standard_normal(spec.output_shape(config, batch_size), dtype=np.float32)
    return inputs, targets
