"""The MindSpore side of ``earthport bench``: the model from its preset and the trainer's step on a fixed batch.

The train step is ``MindSporeTrainer``'s on one batch: forward at the run's precision (O2 with the spectral
filter in float32), masked MSE (no mask: FourCastNet's fields have none), gradients, loss scaling for fp16,
the trainer's clipping and ``FusedAdamW``; in ``graph`` mode both steps are compiled with ``mindspore.jit``
(compilation happens in the warm-up steps). MindSpore has no synchronize on the CPU, so there the fence reads
the step's result back to the host (``.asnumpy()``): its loss, and the last parameter the optimizer updates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from earthport.backends.mindspore import runtime
from earthport.bench.steps import BenchSpec, BenchSteps, random_batch
from earthport.config import TrainConfig
from earthport.models import registry
from earthport.optional import import_mindspore

ms = import_mindspore()
from mindspore import Tensor  # noqa: E402

from earthport.backends.mindspore.adamw import FusedAdamW  # noqa: E402
from earthport.backends.mindspore.ops import gradient_update, masked_mse  # noqa: E402


def build(spec: BenchSpec) -> BenchSteps:
    """Cell, batch and optimizer for ``spec`` on its device; inputs [batch, in, H, W]."""
    device = runtime.select_device(spec.device)
    threads = runtime.configure_threads(spec.threads)
    runtime.check_precision(spec.precision, device)  # "unavailable: ..." where the backend has no kernels
    runtime.seed_everything(spec.seed, deterministic=False)
    model_spec = registry.spec(spec.model)
    config = model_spec.preset(spec.preset)
    net = runtime.build_cell(model_spec, config, spec.activation_checkpointing)
    float32_cells = model_spec.mindspore_float32()
    forward_net, _ = runtime.mixed_precision(net, spec.precision, device, float32_cells)
    inputs, targets = (Tensor(a) for a in random_batch(model_spec, config, spec.batch_size, spec.seed))
    pending: list[Any] = []  # results whose work may still be queued

    def use(train: bool) -> None:
        if net.training != train:
            net.set_train(train)

    def forward(x):
        return forward_net(x)

    infer_graph = runtime.compile_step(forward, spec.ms_mode)
    train_graph, last_param = _train_step(net, forward_net, spec)

    def infer() -> Any:
        use(False)
        pending.append(infer_graph(inputs))

    def train() -> Any:
        use(True)
        pending.extend((train_graph(inputs, targets), last_param))

    def sync() -> None:
        runtime.synchronize(device)
        for result in pending:
            result.asnumpy()
        pending.clear()

    return BenchSteps(
        infer=infer,
        train=train,
        sync=sync,
        device={"name": device.name, "backend": device.backend, "description": device.description},
        threads=threads,
        peak_memory=lambda: runtime.peak_memory(device),
        reset_peak_memory=lambda: runtime.reset_peak_memory(device),
    )


def _train_step(net: Any, forward_net: Any, spec: BenchSpec) -> tuple[Callable, Any]:
    """(step(inputs [batch, in, H, W], targets [batch, out_chans, H, W]) -> loss, compiled for
    ``spec.ms_mode``; the optimizer's last updated parameter, to fence on)."""
    defaults = TrainConfig()
    optimizer = FusedAdamW(net.trainable_params(), lr=defaults.lr, weight_decay=defaults.weight_decay)
    scaler = runtime.loss_scaler(spec.precision)

    def objective(inputs, targets):
        loss = masked_mse(forward_net(inputs), targets, None)
        return loss if scaler is None else scaler.scale(loss)

    grad_fn = ms.value_and_grad(objective, None, optimizer.parameters)
    update = gradient_update(optimizer, scaler, defaults.grad_clip)

    def step(inputs, targets):
        loss, grads = grad_fn(inputs, targets)
        return update(loss, grads)

    return runtime.compile_step(step, spec.ms_mode), optimizer.parameters[-1]
