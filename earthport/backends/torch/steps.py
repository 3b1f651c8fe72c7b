"""The torch side of ``earthport bench``: the model from its preset and the trainer's step on a fixed batch.

The train step is ``TorchTrainer.train_step`` on one batch without the data loader and the schedule: forward
under autocast, masked MSE (no mask: FourCastNet's fields have none), backward through the grad scaler, the
trainer's gradient clipping and AdamW with its defaults.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from earthport.backends.torch import runtime
from earthport.backends.torch.losses import masked_mse
from earthport.backends.torch.trainer import backward_and_step
from earthport.bench.steps import BenchSpec, BenchSteps, random_batch
from earthport.config import TrainConfig
from earthport.errors import EarthportError
from earthport.models import registry


def build(spec: BenchSpec) -> BenchSteps:
    """Model, batch and optimizer for ``spec`` on its device; inputs [batch, in, H, W]."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    device = runtime.select_device(spec.device)
    try:
        runtime.autocast(device, spec.precision)
    except EarthportError as err:
        raise EarthportError(f"unavailable: {spec.precision} in torch on {device.description} ({err})") from None
    runtime.seed_everything(spec.seed, deterministic=False)
    model_spec = registry.spec(spec.model)
    config = model_spec.preset(spec.preset)
    model = model_spec.torch_class()(config).to(device.torch)
    model.activation_checkpointing = spec.activation_checkpointing
    runtime.compile_model(model, spec.compile)
    batch = random_batch(model_spec, config, spec.batch_size, spec.seed)
    inputs, targets = (torch.from_numpy(a).to(device.torch) for a in batch)
    phase = [""]

    def use(mode: str) -> None:  # switch once, not every step: eval() walks the whole module tree
        if phase[0] != mode:
            model.train(mode == "train")
            phase[0] = mode

    @torch.no_grad()
    def infer() -> torch.Tensor:
        use("infer")
        with runtime.autocast(device, spec.precision):
            return model(inputs)

    train = _train_step(model, inputs, targets, device, spec.precision, use)
    return BenchSteps(
        infer=infer,
        train=train,
        sync=lambda: runtime.synchronize(device),
        device={"name": device.name, "backend": device.backend, "description": device.description},
        threads={"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
        peak_memory=lambda: runtime.peak_memory(device),
        reset_peak_memory=lambda: runtime.reset_peak_memory(device),
    )


def _train_step(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, device: runtime.Device,
                precision: str, use: Callable[[str], None]) -> Callable[[], torch.Tensor]:  # fmt: skip
    """inputs [batch, in, H, W], targets [batch, out_chans, H, W] -> one optimizer step; returns the loss."""
    defaults = TrainConfig()
    optimizer = torch.optim.AdamW(model.parameters(), lr=defaults.lr, weight_decay=defaults.weight_decay)
    scaler = runtime.grad_scaler(device, precision)

    def train() -> torch.Tensor:
        use("train")
        optimizer.zero_grad(set_to_none=True)
        with runtime.autocast(device, precision):
            loss = masked_mse(model(inputs), targets, None)
        backward_and_step(loss, model, optimizer, scaler, defaults.grad_clip)
        return loss.detach()

    return train
