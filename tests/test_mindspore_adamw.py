"""FusedAdamW (MindSpore's fused kernel) takes torch's AdamW steps, bias correction and decoupled decay included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.mindspore


def test_fused_adamw_follows_torch_adamw():
    import mindspore as ms

    from earthport.backends.mindspore.adamw import FusedAdamW

    rng = np.random.default_rng(0)
    shapes = [(4, 3), (5,), (2, 2, 2)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(6)]
    reference = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in start]
    torch_opt = torch.optim.AdamW(reference, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    params = [ms.Parameter(ms.Tensor(a.copy()), name=f"p{i}") for i, a in enumerate(start)]
    opt = FusedAdamW(params, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)

    @ms.jit
    def step(*g):
        return opt(g)

    for g in grads:
        for p, value in zip(reference, g, strict=True):
            p.grad = torch.from_numpy(value)
        torch_opt.step()
        step(*(ms.Tensor(value) for value in g))
    for expected, got, first in zip(reference, params, start, strict=True):
        moved = np.abs(expected.detach().numpy() - first).max()
        # a few float32 roundings of the update, against an update of ~6e-2 over six steps
        assert np.abs(expected.detach().numpy() - got.asnumpy()).max() <= 1e-5 * moved
    assert int(opt.state_step.asnumpy()) == 6
    exp_avg = torch_opt.state[reference[0]]["exp_avg"].numpy()
    np.testing.assert_allclose(opt.exp_avg[0].asnumpy(), exp_avg, rtol=1e-6, atol=1e-7)
    assert [p.name for p in opt.exp_avg_sq] == ["exp_avg_sq.p0", "exp_avg_sq.p1", "exp_avg_sq.p2"]
