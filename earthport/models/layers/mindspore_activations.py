"""Activations MindSpore models share, in the form torch computes them."""

from __future__ import annotations

from earthport.optional import import_mindspore

import_mindspore()
from mindspore import nn, ops  # noqa: E402


class ExactGELU(nn.Cell):
    """torch's ``nn.GELU()``, x * (1 + erf(x / sqrt(2))) / 2, multiplying by 1/sqrt(2): MindSpore's ``nn.GELU``
    defaults to the tanh approximation, and its exact form divides, with a CPU Div kernel as slow as four Muls."""

    def construct(self, x):
        return 0.5 * x * (1.0 + ops.erf(x * 0.7071067811865476))
