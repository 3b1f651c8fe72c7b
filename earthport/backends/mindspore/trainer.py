"""The MindSpore side of training: the same data, model config, optimiser maths, schedule, clipping, losses and
rollouts as the torch trainer, with the train step compiled to a graph (``mindspore.jit``) by default.

- Batches come from ``mindspore_dataset`` in ``epoch_order``: the torch run's batches, in the same order.
- ``FusedAdamW`` (torch's AdamW maths through MindSpore's fused kernel, state laid out as
  ``mindspore.experimental.optim.AdamW``'s); the learning rate is
  ``CosineSchedule`` (torch's CosineAnnealingLR recurrence) written into the optimizer before each step with
  ``ops.assign`` — ``Parameter.set_data`` is not seen by an already compiled graph.
- fp16 runs at the O2 level with the spectral filter in float32 and a dynamic loss scaler (``runtime.mindspore``).
- Checkpoints ``last.ckpt``/``best.ckpt`` (or ``.safetensors``) in ``earthport.migrate.checkpoint_io``'s layout:
  model Parameters by name, AdamW's ``exp_avg.<name>``/``exp_avg_sq.<name>``/``state_step``, and earthport's
  metadata (model, config, data, train_config, TrainState, schedule, scaler, RNG) as JSON strings. A torch
  ``last.pt`` resumes here through ``earthport.migrate.resume``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from earthport.backends.base import (
    TrainData,
    TrainState,
    mask_ratio_at,
    micro_token_permutations,
    micro_weights,
    resumed_state,
)
from earthport.backends.mindspore import distributed, runtime
from earthport.backends.mindspore.loader import mindspore_dataset
from earthport.backends.mindspore.ops import LOSSES, gradient_update, rollout
from earthport.backends.mindspore.schedule import CosineSchedule
from earthport.config import TrainConfig
from earthport.data.samples import Order
from earthport.migrate import checkpoint_io
from earthport.migrate.optimizer import mindspore_adamw_to_neutral, neutral_to_tensors
from earthport.migrate.resume import load_mindspore_run, torch_run_to_mindspore
from earthport.migrate.transfer import load_mindspore, state_mindspore
from earthport.models import registry
from earthport.models.base import LoadedModel
from earthport.optional import import_mindspore

ms = import_mindspore()
from mindspore import Tensor, ops  # noqa: E402

from earthport.backends.mindspore.adamw import FusedAdamW  # noqa: E402


class _Epoch:
    """A MindSpore dataset's batches as Tensors, with a length (``training_loop.Batches``)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return self.dataset.get_dataset_size()

    def __iter__(self):
        return self.dataset.create_tuple_iterator(num_epochs=1)


class MindSporeTrainer:
    """``training_loop.Trainer`` for MindSpore: inputs [B, in, H, W], targets [B, steps, out + forcing, H, W]."""

    framework = "mindspore"

    def __init__(self, config: TrainConfig, data: TrainData):
        self.config, self.data, self.world = config, data, data.world
        self.suffix = f".{config.checkpoint_format}"
        self.device = runtime.select_device(config.device)
        if self.world.launcher == "msrun":  # msrun's scheduler waits for every worker, one of one too
            distributed.join(self.world)  # once the device is set
        self.threads = runtime.configure_threads(config.ms_threads)
        self.determinism = runtime.seed_everything(config.seed, config.deterministic)
        spec = registry.spec(config.model)
        self.net = runtime.build_cell(spec, data.model_config, config.activation_checkpointing)
        float32_cells = spec.mindspore_float32()
        self.forward_net, self.amp = runtime.mixed_precision(self.net, config.precision, self.device, float32_cells)
        for name, parameter in self.net.parameters_and_names():
            parameter.requires_grad = parameter.requires_grad and spec.trains(name, config.freeze_backbone)
        self.optimizer = FusedAdamW(self.net.trainable_params(), lr=config.lr, weight_decay=config.weight_decay)
        self.schedule = CosineSchedule(config.lr, config.max_epochs * data.steps_per_epoch)
        self.scaler = runtime.loss_scaler(config.precision)
        mask = data.mask
        self.mask = None if mask is None else Tensor(mask)
        self.loss_fn = LOSSES[config.loss]
        self._epoch = 0  # the epoch in progress (the masking schedule)
        self.reduce = distributed.gradient_reducer(self.optimizer.parameters, self.world)
        self._steps: dict[float | None, tuple] = {}  # compiled steps: None forecasting, a mask ratio masked_pretrain
        self._predict = runtime.compile_step(self._make_predict(), config.ms_mode)

    def _steps_for(self, ratio: float | None) -> tuple:
        """(step, grads, apply) of the objective, compiled once: ``grads(inputs, targets[, ids], weight)`` -> the
        weighted micro-batch loss and its gradients; ``apply(loss, grads)`` averages the gradients over the
        workers, unscales, clips and steps AdamW, returning the loss; ``step`` is both in one graph (one
        micro-batch a step)."""
        if ratio not in self._steps:
            forward = self._forecast_loss() if ratio is None else self._masked_loss(ratio)
            grad_fn = ms.value_and_grad(forward, None, self.optimizer.parameters)
            update = gradient_update(self.optimizer, self.scaler, self.config.grad_clip, self.reduce)

            def step(*batch):
                loss, grads = grad_fn(*batch)
                return update(loss, grads)

            def grads(*batch):
                return grad_fn(*batch)

            mode = self.config.ms_mode
            self._steps[ratio] = tuple(runtime.compile_step(fn, mode) for fn in (step, grads, update))
        return self._steps[ratio]

    def _forecast_loss(self):
        """Rollout loss (summed over steps) of inputs [B, in, H, W], targets [B, steps, out + forcing, H, W],
        times ``weight`` (and the loss scale)."""
        n_out, scaler = len(self.data.train_pairs.prognostic), self.scaler
        history = self.data.train_pairs.history
        net, loss_fn, mask = self.forward_net, self.loss_fn, self.mask

        def forward(inputs, targets, weight):
            steps, forcings, targets = targets.shape[1], targets[:, :, n_out:], targets[:, :, :n_out]
            predictions = rollout(net, inputs, steps, forcings, history)
            loss = loss_fn(predictions[:, 0], targets[:, 0], mask)
            for k in range(1, steps):  # NVlabs' two_step_training sums the per-step losses
                loss = loss + loss_fn(predictions[:, k], targets[:, k], mask)
            loss = loss * weight
            return loss if scaler is None else scaler.scale(loss)

        return forward

    def _masked_loss(self, ratio: float):
        """masked_pretrain at ``ratio``: the one-step loss of the model on the tokens ``ids`` [B, L] leaves
        visible, times ``weight`` (and the loss scale)."""
        n_out, scaler = len(self.data.train_pairs.prognostic), self.scaler
        net, loss_fn, mask = self.forward_net, self.loss_fn, self.mask

        def forward(inputs, targets, ids, weight):
            loss = loss_fn(net(inputs, ratio, ids), targets[:, 0, :n_out], mask) * weight
            return loss if scaler is None else scaler.scale(loss)

        return forward

    def _make_predict(self):
        net, loss_fn, mask = self.forward_net, self.loss_fn, self.mask

        def predict(inputs, target):
            return loss_fn(net(inputs), target, mask)

        return predict

    def batches(self, epoch: int, skip: int) -> _Epoch:
        self._epoch = epoch
        pairs = self.data.train_pairs.spread(self.config.max_train_samples)
        self.net.set_train(True)
        order = Order(epoch, self.config.seed, rank=self.world.rank, world_size=self.world.size, skip=skip)
        return _Epoch(mindspore_dataset(pairs, self.config.batch_size, order))

    def train_step(self, micro_batches: Sequence[tuple[Tensor, Tensor]]) -> float:
        """One optimizer step on micro-batches (inputs [B, in, H, W], targets [B, steps, out + forcing, H, W]):
        each one's loss weighed by its share of the samples, gradients summed, then averaged over the workers;
        returns the loss of the global batch."""
        ops.assign(self.optimizer.lrs[0], Tensor(self.schedule.lr, ms.float32))
        lengths = [int(inputs.shape[0]) for inputs, _ in micro_batches]
        ids = micro_token_permutations(self.config, self.data.model_config, lengths, self.schedule.last_epoch,
                                       self.world)  # fmt: skip
        step, grads, apply = self._steps_for(None if ids is None else mask_ratio_at(self.config, self._epoch))
        arguments = [
            (inputs, targets, *(() if ids is None else (Tensor(ids[i]),)), Tensor(weight, ms.float32))
            for i, ((inputs, targets), weight) in enumerate(zip(micro_batches, micro_weights(lengths), strict=True))
        ]
        if len(arguments) == 1:
            loss = step(*arguments[0])
        else:
            loss, summed = grads(*arguments[0])
            for batch in arguments[1:]:
                micro_loss, micro_grads = grads(*batch)
                loss, summed = loss + micro_loss, tuple(a + b for a, b in zip(summed, micro_grads, strict=True))
            loss = apply(loss, summed)
        local = float(loss.asnumpy())  # asnumpy fences: the step is done
        self.schedule.step()
        return self.all_sum([local])[0] / self.world.size

    def all_sum(self, values: Sequence[float]) -> list[float]:
        return distributed.all_sum(values, self.world)

    def validate(self) -> float:
        """Mean one-step loss over the validation pairs (fixed order; each worker its shard), masked cells
        skipped."""
        pairs = self.data.valid_pairs.spread(self.config.max_valid_samples)
        self.net.set_train(False)
        n_out = len(pairs.prognostic)
        total, count = 0.0, 0
        shard = Order(shuffle=False, rank=self.world.rank, world_size=self.world.size, pad=False)
        if len(shard.indices(len(pairs))):  # fewer validation samples than workers leave some none
            for inputs, targets in _Epoch(mindspore_dataset(pairs, self.config.batch_size, shard)):
                total += float(self._predict(inputs, targets[:, 0, :n_out]).asnumpy()) * len(inputs)
                count += len(inputs)
        total, count = self.all_sum([total, count])
        return total / count

    def learning_rate(self) -> float:
        return self.schedule.lr

    def save(self, path: Path, state: TrainState, full: bool = True) -> None:
        """A checkpoint: always model, config and data; with ``full`` also everything needed to resume. Called on
        every rank; rank 0 writes (every rank holds the same weights)."""
        if not self.world.main:
            return
        tensors = {name: p.asnumpy() for name, p in self.net.parameters_dict().items()}
        extra = {"data": self.data.info, "train_config": self.config.to_dict(), "epoch": state.epoch,
                 "best_epoch": state.best_epoch}  # fmt: skip
        hyper = None
        if full:
            neutral = mindspore_adamw_to_neutral(self.optimizer)
            tensors.update(neutral_to_tensors(neutral, {}))
            hyper = neutral["hyper"]
            extra.update(
                state=dict(state.__dict__),
                scheduler=self.schedule.state_dict(),
                scaler=self._scaler_state(),
                rng={"mindspore": ms.get_rng_state().asnumpy().tolist(), "seed": self.config.seed},
            )
        meta = checkpoint_io.metadata("mindspore", self.config.model, self.data.model_config.to_dict(), "earthport",
                                      extra, hyper)  # fmt: skip
        write = checkpoint_io.write_safetensors if self.suffix == ".safetensors" else checkpoint_io.write_mindspore_ckpt
        write(path, tensors, meta)

    def restore(self, path: Path) -> TrainState:
        """Continue from ``path``: this trainer's ``last.ckpt``/``.safetensors``, or a torch ``last.pt``."""
        expected = self.data.model_config.to_dict()
        if checkpoint_io.detect(path) != "torch":  # names the file and key of what does not fit
            extra = load_mindspore_run(path, self.net, self.optimizer, expected)
            ms.set_rng_state(Tensor(np.asarray(extra["rng"]["mindspore"], np.uint8)))
        else:  # a torch run: weights and AdamW state converted by name rules
            extra = torch_run_to_mindspore(path, self.net, self.optimizer, expected)
        self.schedule.load_state_dict(extra["scheduler"])  # its T_max too, as torch's: the first run's cosine goes on
        self._load_scaler(extra.get("scaler") or {})
        return resumed_state(path, extra["state"])

    def initialise(self, loaded: LoadedModel) -> None:
        """The Cell's weights from ``loaded`` (a MindSpore Cell of the same config), for fine-tuning."""
        load_mindspore(self.net, state_mindspore(loaded.module))

    def _scaler_state(self) -> dict:
        """The loss scaler in torch GradScaler's state keys ({} when disabled, as torch)."""
        if self.scaler is None:
            return {}
        _, factor, window = runtime.LOSS_SCALE
        return {
            "scale": float(self.scaler.scale_value.asnumpy()),
            "growth_factor": float(factor),
            "backoff_factor": 1.0 / factor,
            "growth_interval": window,
            "_growth_tracker": int(self.scaler.counter.asnumpy()),
        }

    def _load_scaler(self, state: dict) -> None:
        if self.scaler is not None and state:
            ops.assign(self.scaler.scale_value, Tensor(state["scale"], ms.float32))
            ops.assign(self.scaler.counter, Tensor(state["_growth_tracker"], self.scaler.counter.dtype))

    def describe(self) -> dict:
        from earthport.models.layers.mindspore_fft import fft_backend

        return {
            "framework": self.framework,
            "device": self.device.to_dict(),
            "parameters": sum(int(np.prod(p.shape)) for p in self.net.parameters_dict().values()),  # as torch: all
            "memory": runtime.peak_memory(self.device),
            "determinism": self.determinism,
            "mindspore": {
                "version": ms.__version__,
                "mode": self.config.ms_mode,
                "compiled": "mindspore.jit: train step, validation forward" if self.config.ms_mode == "graph" else "no",
                "threads": self.threads,
                "amp": self.amp,
                "loss_scale": "dynamic (DynamicLossScaler)" if self.scaler is not None else "none",
                "fft_backend": fft_backend(),
                "recompute": self.config.activation_checkpointing,
            },
        }
