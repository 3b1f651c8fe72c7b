"""torch's AdamW for MindSpore through the fused ``AdamWeightDecay`` kernel: one kernel per parameter.

``mindspore.experimental.optim.AdamW`` has torch's maths but runs a dozen small kernels per parameter (Mul,
Addcmul, Div, Sqrt, Assign, ...); on the CPU backend that was about a third of a FourCastNet training step.
The fused kernel does Adam without bias correction and with weight decay scaled by its learning rate:

    kernel:  p <- p - lr' (m / (sqrt(v) + eps') + wd' p)
    torch:   p <- p (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

which are the same update with lr' = lr sqrt(1 - b2^t) / (1 - b1^t), eps' = eps sqrt(1 - b2^t) and
wd' = wd lr / lr' = wd (1 - b1^t) / sqrt(1 - b2^t) (the moments m, v are updated identically). Those three
scalars are computed each step; wd' is taken without lr, which a cosine schedule brings to exactly 0 at its
end (a resumed, longer run steps there: wd lr / lr' would be 0 / 0, NaN weights).

State is laid out as ``mindspore.experimental.optim.AdamW``'s (``exp_avg.<name>``, ``exp_avg_sq.<name>``,
``max_exp_avg_sq.<name>`` (unused: no amsgrad), ``state_step``, ``lrs``, ``param_groups``), so
``earthport.migrate.optimizer`` converts it to and from torch's AdamW state.
"""

from __future__ import annotations

from collections.abc import Sequence

from earthport.optional import import_mindspore

ms = import_mindspore()
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops  # noqa: E402


class FusedAdamW(nn.Cell):
    """AdamW (torch semantics, one parameter group, no amsgrad). ``optimizer(grads)`` applies one step."""

    def __init__(
        self, params: Sequence[Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8, weight_decay: float = 1e-2,
    ):  # fmt: skip
        super().__init__(auto_prefix=False)
        self.parameters = ParameterTuple(params)
        self.exp_avg = self.parameters.clone(prefix="exp_avg", init="zeros")
        self.exp_avg_sq = self.parameters.clone(prefix="exp_avg_sq", init="zeros")
        self.max_exp_avg_sq = self.parameters.clone(prefix="max_exp_avg_sq", init="zeros")
        self.state_step = Parameter(Tensor(0, ms.int32), name="state_step")
        self.lrs = ParameterTuple([Parameter(Tensor(lr, ms.float32), name="learning_rate_group_0")])
        self.param_groups = [
            {"params": list(self.parameters), "lr": self.lrs[0], "betas": tuple(betas), "eps": eps,
             "weight_decay": weight_decay, "amsgrad": False, "maximize": False},
        ]  # fmt: skip
        self.beta1, self.beta2 = Tensor(betas[0], ms.float32), Tensor(betas[1], ms.float32)
        self.eps, self.weight_decay = Tensor(eps, ms.float32), Tensor(weight_decay, ms.float32)
        self.update = ops.AdamWeightDecay()
        self.hyper_map = ops.HyperMap()

    def construct(self, grads):
        step = self.state_step + 1
        ops.assign(self.state_step, step)
        t = step.astype(ms.float32)
        correction2 = ops.sqrt(1 - ops.pow(self.beta2, t))
        lr = self.lrs[0]
        correction1 = 1 - ops.pow(self.beta1, t)
        step_lr = lr * correction2 / correction1
        eps = self.eps * correction2
        decay = self.weight_decay * correction1 / correction2  # wd lr / lr', without 0 / 0 when lr is 0
        return self.hyper_map(
            ops.partial(self._apply, step_lr, eps, decay), self.parameters, self.exp_avg, self.exp_avg_sq, grads
        )

    def _apply(self, lr, eps, decay, param, exp_avg, exp_avg_sq, grad):
        return self.update(param, exp_avg, exp_avg_sq, lr, self.beta1, self.beta2, eps, decay, grad)
