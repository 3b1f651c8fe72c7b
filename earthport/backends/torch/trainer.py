"""The PyTorch side of training: model, AdamW, cosine schedule, grad scaler, checkpoints (``.pt``).

``last.pt`` holds everything to resume (model, AdamW, schedule, grad scaler, the sampler's position in its
epoch, RNG states, history); ``best.pt`` the model and metadata. With fp32 on the CPU and ``deterministic``,
a run resumed from ``last.pt`` follows the uninterrupted run's loss trajectory bit for bit. A ``last.ckpt``
or ``last.safetensors`` written by the MindSpore trainer resumes here through ``earthport.migrate.resume``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import torch

from earthport.backends.base import (
    TrainData,
    TrainState,
    mask_ratio_at,
    micro_token_permutations,
    micro_weights,
    resumed_state,
)
from earthport.backends.torch import distributed, runtime
from earthport.backends.torch.loader import torch_loader
from earthport.backends.torch.losses import LOSSES
from earthport.backends.torch.rollout import rollout
from earthport.config import TrainConfig
from earthport.data.samples import Order
from earthport.errors import EarthportError
from earthport.migrate.checkpoint_io import detect, load_checkpoint, save_checkpoint
from earthport.migrate.resume import check_torch_run, mindspore_run_to_torch
from earthport.models import registry
from earthport.models.base import LoadedModel


def backward_and_step(loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler, grad_clip: float) -> None:  # fmt: skip
    """Backward through the grad scaler, unscale and clip to ``grad_clip`` (0: no clipping), then the optimizer
    step; the scaler skips the step on inf/NaN gradients (fp16) and is a pass-through when disabled."""
    scaler.scale(loss).backward()
    clip_and_step(model, optimizer, scaler, grad_clip)


def clip_and_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                  grad_clip: float) -> None:  # fmt: skip
    """``backward_and_step`` once the (scaled) gradients are in: unscale, clip, the optimizer step."""
    if grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()


class Predictor(torch.nn.Module):
    """What one training step runs, as one module (DistributedDataParallel wraps it whole: a rollout calls the
    model several times in one forward). Returns [B, steps, out, H, W]: a rollout of the model, or
    (masked_pretrain) one step on the tokens ``ids`` [B, L] leaves visible."""

    def __init__(self, model: torch.nn.Module, history: int):
        super().__init__()
        self.model, self.history = model, history

    def forward(self, inputs: torch.Tensor, steps: int, forcings: torch.Tensor, ratio: float,
                ids: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
        if ids is None:
            return rollout(self.model, inputs, steps, forcings, self.history)
        return self.model(inputs, ratio, ids)[:, None]


class TorchTrainer:
    """``training_loop.Trainer`` for PyTorch: inputs [B, in, H, W], targets [B, steps, out + forcing, H, W]."""

    framework = "torch"
    suffix = ".pt"

    def __init__(self, config: TrainConfig, data: TrainData):
        self.config, self.data = config, data
        self.determinism = runtime.seed_everything(config.seed, config.deterministic)
        self.world = data.world
        if self.world.size > 1:
            distributed.join(self.world, config.device)  # before the device: it is the local rank's
        self.device = runtime.select_device(config.device)
        spec = registry.spec(config.model)
        self.model = spec.torch_class()(data.model_config).to(self.device.torch)
        self.model.activation_checkpointing = config.activation_checkpointing
        runtime.compile_model(self.model, config.compile)
        for name, parameter in self.model.named_parameters():
            parameter.requires_grad_(parameter.requires_grad and spec.trains(name, config.freeze_backbone))
        self.predictor: torch.nn.Module = Predictor(self.model, data.train_pairs.history)
        self.sharded = self.world.size > 1 and config.parallel == "fsdp"
        if self.sharded:  # parameters, gradients and AdamW's state split over the ranks
            self.predictor = distributed.shard(self.predictor, self.model, self.world, self.device.torch)
        elif self.world.size > 1:  # gradients averaged over the ranks in the backward pass
            self.predictor = distributed.wrap(self.predictor, self.device.torch)
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
        t_max = config.max_epochs * data.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=t_max)
        self.scaler = runtime.grad_scaler(self.device, config.precision)
        mask = data.mask
        self.mask = None if mask is None else torch.from_numpy(mask).to(self.device.torch)
        self.loss_fn = LOSSES[config.loss]
        self._epoch = 0  # the epoch in progress (the masking schedule)

    def batches(self, epoch: int, skip: int):
        self._epoch = epoch
        pairs = self.data.train_pairs.spread(self.config.max_train_samples)
        self.predictor.train()
        order = Order(epoch, self.config.seed, rank=self.world.rank, world_size=self.world.size, skip=skip)
        return torch_loader(pairs, self.config.batch_size, order)

    def train_step(self, micro_batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """One optimizer step on micro-batches (inputs [B, in, H, W], targets [B, steps, out + forcing, H, W]):
        each one's loss weighed by its share of the samples, gradients summed (and averaged over the ranks, once,
        with the last micro-batch's backward pass); returns the loss of the global batch."""
        device, config = self.device, self.config
        lengths = [len(inputs) for inputs, _ in micro_batches]
        ids = micro_token_permutations(config, self.data.model_config, lengths, self.scheduler.last_epoch, self.world)
        ratio = mask_ratio_at(config, self._epoch)
        n_out = len(self.data.train_pairs.prognostic)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i, ((inputs, targets), weight) in enumerate(zip(micro_batches, micro_weights(lengths), strict=True)):
            inputs, targets = inputs.to(device.torch), targets.to(device.torch)
            steps, (targets, forcings) = targets.shape[1], (targets[:, :, :n_out], targets[:, :, n_out:])
            tokens = None if ids is None else torch.from_numpy(ids[i]).long().to(device.torch)
            last = i == len(micro_batches) - 1
            with self._synchronised(last), runtime.autocast(device, config.precision):
                predictions = self.predictor(inputs, steps, forcings, ratio, tokens)
                # NVlabs' two_step_training sums the per-step losses
                loss = sum(self.loss_fn(predictions[:, k], targets[:, k], self.mask) for k in range(steps))
                self.scaler.scale(loss * weight).backward()
            total += float(loss.detach()) * weight
        clip_and_step(self.model, self.optimizer, self.scaler, config.grad_clip)
        self.scheduler.step()
        return self.all_sum([total])[0] / self.world.size

    def _synchronised(self, synchronise: bool):
        """No gradient sync for the micro-batches before the last (their gradients stay local until then): DDP's
        ``no_sync``, FSDP's ``set_requires_gradient_sync``."""
        if self.sharded:  # FSDP2's is a flag, not a context
            self.predictor.set_requires_gradient_sync(synchronise)
            return contextlib.nullcontext()
        if synchronise or self.world.size == 1:
            return contextlib.nullcontext()
        return self.predictor.no_sync()

    def all_sum(self, values: Sequence[float]) -> list[float]:
        return distributed.all_sum(values, self.device.torch)

    @torch.no_grad()
    def validate(self) -> float:
        """Mean one-step loss over the validation pairs (fixed order), masked cells skipped: each rank its disjoint
        shard, or (FSDP, whose gathers every rank must join alike) every rank all of them."""
        pairs = self.data.valid_pairs.spread(self.config.max_valid_samples)
        self.predictor.eval()
        total, count = 0.0, 0
        shard = Order(shuffle=False, rank=self.world.rank, world_size=self.world.size, pad=False)
        for inputs, targets in torch_loader(pairs, self.config.batch_size, Order(shuffle=False) if self.sharded
                                            else shard):  # fmt: skip
            with runtime.autocast(self.device, self.config.precision):
                prediction = self._one_step(inputs.to(self.device.torch))
            target = targets[:, 0, : len(pairs.prognostic)].to(self.device.torch)
            total += float(self.loss_fn(prediction, target, self.mask)) * len(inputs)
            count += len(inputs)
        if not self.sharded:
            total, count = self.all_sum([total, count])
        return total / count

    def _one_step(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model on inputs [B, in, H, W] -> [B, out, H, W]; through FSDP's root, which gathers the parameters."""
        if self.sharded:
            return self.predictor(inputs, 1, None, 0.0, None)[:, 0]
        return self.model(inputs)

    def learning_rate(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def save(self, path: Path, state: TrainState, full: bool = True) -> None:
        """A checkpoint: always model, config and data; with ``full`` also everything needed to resume. Called on
        every rank (FSDP gathers the shards to rank 0, in an unsharded run's layout); rank 0 writes."""
        if self.sharded:
            model_state, optimizer_state = distributed.full_state(self.predictor, self.optimizer, "model.")
        elif self.world.main:
            model_state, optimizer_state = self.model.state_dict(), self.optimizer.state_dict()
        if not self.world.main:
            return
        payload = {
            "model": self.config.model,
            "config": self.data.model_config.to_dict(),
            "model_state": model_state,
            "data": self.data.info,
            "train_config": self.config.to_dict(),
            "epoch": state.epoch,
            "best_epoch": state.best_epoch,
        }
        if full:
            cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
            payload.update(
                optimizer=optimizer_state,
                scheduler=self.scheduler.state_dict(),
                scaler=self.scaler.state_dict(),
                state=dict(state.__dict__),
                rng={"torch": torch.get_rng_state(), "cuda": cuda_rng},
            )
        save_checkpoint(path, payload)

    def restore(self, path: Path) -> TrainState:
        """Continue from ``path``: earthport's ``last.pt``, or a MindSpore ``last.ckpt``/``.safetensors``."""
        expected = self.data.model_config.to_dict()
        if detect(path) == "torch":
            payload = load_checkpoint(path)
            check_torch_run(path, payload, self.model, expected)  # names the file and key of what does not fit
            if self.sharded:  # every rank reads the whole file and keeps its shards
                distributed.load_full_state(self.predictor, self.optimizer, "model.", payload["model_state"],
                                            payload["optimizer"])  # fmt: skip
            else:
                self.model.load_state_dict(payload["model_state"])
                self.optimizer.load_state_dict(payload["optimizer"])
            torch.set_rng_state(payload["rng"]["torch"])
            if payload["rng"]["cuda"]:
                torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
        elif self.sharded:
            raise EarthportError(f"{path}: a MindSpore run resumes in torch with train.parallel=ddp (or convert it "
                                 "with `earthport convert`); parallel=fsdp resumes torch runs")  # fmt: skip
        else:  # a MindSpore run: weights and AdamW state converted by name rules
            payload = mindspore_run_to_torch(path, self.model, self.optimizer, expected)
        self.scheduler.load_state_dict(payload["scheduler"])  # its T_max too: the first run's cosine goes on
        self.scaler.load_state_dict(payload["scaler"])
        return resumed_state(path, payload["state"])

    def initialise(self, loaded: LoadedModel) -> None:
        """The model's weights from ``loaded`` (a torch module of the same config), for fine-tuning."""
        if self.sharded:
            distributed.load_full_state(self.predictor, None, "model.", loaded.module.state_dict())
        else:
            self.model.load_state_dict(loaded.module.state_dict(), strict=True)

    def describe(self) -> dict:
        return {
            "framework": self.framework,
            "device": self.device.to_dict(),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "memory": runtime.peak_memory(self.device),
            "determinism": self.determinism,
        }
