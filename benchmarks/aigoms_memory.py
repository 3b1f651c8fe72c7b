"""Where AI-GOMS's resident memory goes on the CPU: MindSpore's four-step token FFT (N = 16,200) and one block of the
paper preset, in MindSpore (GRAPH, PyNative) and in torch.

Every case runs in its own process and reads that process's resident memory (``VmRSS``, now) and its peak
(``VmHWM``) from ``/proc/self/status`` after each stage: the framework imported; the cells and the input built;
the first call, then three more, of each function. Cases:

- ``fft``: rfft -> irfft over the tokens of [1, 16200, C] (as ``benchmarks/fft_1d.py``: forward, then the gradient
  graph in the same process), the four-step path at several C (what grows with the tensors and what does not), in
  PyNative, and the native FFT;
- ``mul``: four multiplies of a [120, 135, 512] tensor (the four-step twiddle product's shape) by a [120, 135, 1]
  constant, by an explicit ``ops.broadcast_to`` of it, and by a same-shape constant;
- ``block``: one AI-GOMS block of the paper preset (16,200 tokens; width 512 as in the encoder, 1024 as in the
  decoder), inference in MindSpore; in torch inference, and a forward with gradients that also sums the bytes
  autograd saves for the backward (``saved_mb``, each storage once).

    .venv/bin/python benchmarks/aigoms_memory.py --out runs/bench/aigoms_memory.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

N = 16200
CASES = [  # (case, framework, mode, kind, variant, width)
    ("four-step FFT C=8", "mindspore", "graph", "fft", "factorised", 8),
    ("four-step FFT C=128", "mindspore", "graph", "fft", "factorised", 128),
    ("four-step FFT C=256", "mindspore", "graph", "fft", "factorised", 256),
    ("four-step FFT C=512", "mindspore", "graph", "fft", "factorised", 512),
    ("four-step FFT C=512", "mindspore", "pynative", "fft", "factorised", 512),
    ("native FFT C=512", "mindspore", "graph", "fft", "native", 512),
    ("4 Muls by [120,135,1]", "mindspore", "graph", "mul", "broadcast", 512),
    ("4 Muls by broadcast_to", "mindspore", "graph", "mul", "broadcast_to", 512),
    ("4 Muls by [120,135,512]", "mindspore", "graph", "mul", "full", 512),
    ("4 Muls by [120,135,1]", "mindspore", "pynative", "mul", "broadcast", 512),
    ("paper block D=512", "mindspore", "graph", "block", "infer", 512),
    ("paper block D=512", "mindspore", "pynative", "block", "infer", 512),
    ("paper block D=1024", "mindspore", "graph", "block", "infer", 1024),
    ("paper block D=512", "torch", "eager", "block", "infer", 512),
    ("paper block D=512, grad", "torch", "eager", "block", "train", 512),
    ("paper block D=1024, grad", "torch", "eager", "block", "train", 1024),
]


def _memory() -> dict[str, float]:
    """This process's resident memory now and at its peak, MiB."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[{"VmRSS": "rss_mb", "VmHWM": "peak_mb"}[key]] = int(value.split()[0]) / 1024
    return found


def _fft(backend: str, channels: int):
    """(functions, input [1, N, channels]): rfft -> irfft and its gradient."""
    import mindspore as ms
    from fft_1d import mindspore_roundtrip  # this folder's: the transform fft_1d.py times

    roundtrip, gradient = mindspore_roundtrip(N, backend)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((1, N, channels), dtype=np.float32))
    return {"forward": roundtrip, "gradient": gradient}, x


def _mul(operand: str, width: int):
    """Four products of a [p, q, width] tensor with a constant, summed: the twiddle step's pattern."""
    import mindspore as ms
    from mindspore import ops

    p, q = 120, 135
    rng = np.random.default_rng(0)
    shape = (p, q, width) if operand == "full" else (p, q, 1)
    factors = [ms.Tensor(rng.standard_normal(shape, dtype=np.float32)) for _ in range(4)]

    def products(t):
        fs = [ops.broadcast_to(f, t.shape) for f in factors] if operand == "broadcast_to" else factors
        return (t * fs[0] - t * fs[1]) + (t * fs[2] + t * fs[3])

    return {"forward": products}, ms.Tensor(rng.standard_normal((p, q, width), dtype=np.float32))


def _block(framework: str, width: int):
    """(block, input [1, tokens, width]) of the paper preset."""
    from earthport.models.aigoms.config import PRESETS

    config = PRESETS["paper"]
    x = np.random.default_rng(0).standard_normal((1, config.tokens, width), dtype=np.float32)
    if framework == "torch":
        import torch

        from earthport.models.aigoms.torch import Block

        return Block(width, config), torch.from_numpy(x)
    import mindspore as ms

    from earthport.models.aigoms.mindspore import Block

    block = Block(width, config)
    block.set_train(False)
    return block, ms.Tensor(x)


def _torch_block(block, x, train: bool, stages: dict) -> float:
    """Run the torch block (with gradients when ``train``); the MiB autograd saved for the backward."""
    import torch

    saved: dict[int, int] = {}

    def pack(tensor):
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), torch.set_grad_enabled(train):
        block(x.requires_grad_(train))
    stages["forward x1"] = _memory()
    return sum(saved.values()) / 2**20


def measure(index: int) -> dict:
    _, framework, mode, kind, variant, width = CASES[index]
    stages: dict = {}
    if framework == "torch":
        import torch  # noqa: F401  (imported before the first reading, as MindSpore below)

        stages["imported"] = _memory()
        block, x = _block("torch", width)
        stages["built"] = _memory()
        saved = _torch_block(block, x, variant == "train", stages)
        return {"tensor_mb": x.numel() * 4 / 2**20, "saved_mb": saved, "stages": stages}
    import mindspore as ms

    stages["imported"] = _memory()
    if kind == "block":
        block, x = _block("mindspore", width)
        functions = {"forward": block.construct if mode == "graph" else block}
    else:
        functions, x = _fft(variant, width) if kind == "fft" else _mul(variant, width)
    stages["built"] = _memory()
    for label, function in functions.items():
        call = ms.jit(function) if mode == "graph" else function
        call(x).asnumpy()
        stages[f"{label} x1"] = _memory()
        for _ in range(3):
            call(x).asnumpy()
        stages[f"{label} x4"] = _memory()
    return {"tensor_mb": x.size * 4 / 2**20, "stages": stages}


def _row(case: tuple, result: dict) -> dict:
    name, framework, mode = case[:3]
    stages, built = result["stages"], result["stages"]["built"]["peak_mb"]
    forward = stages.get("forward x4", stages["forward x1"])
    row = {"case": name, "framework": f"{framework} {mode}", "tensor MB": result["tensor_mb"],
           "built": built, "forward peak": forward["peak_mb"], "RSS after": forward["rss_mb"],
           "gradient peak": stages["gradient x4"]["peak_mb"] if "gradient x4" in stages else float("nan"),
           "growth / tensor": (forward["peak_mb"] - built) / result["tensor_mb"]}  # fmt: skip
    return row | {"autograd saved MB": result.get("saved_mb", float("nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/aigoms_memory.json"))
    args = parser.parse_args()
    if args.child is not None:
        print("RESULT " + json.dumps(measure(args.child)))
        return
    import pandas as pd

    from earthport.report.console import print_frame

    results = []
    for index, case in enumerate(CASES):
        command = [sys.executable, __file__, "--child", str(index)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))[7:]))
        print(f"{case[0]} ({case[1]} {case[2]}): done", flush=True)
    rows = [_row(case, result) for case, result in zip(CASES, results, strict=True)]
    print_frame(pd.DataFrame(rows), title="resident memory (MiB) per process; growth = forward peak - built",
                floatfmt=".1f")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cases = [{"case": c[0], "framework": c[1], "mode": c[2], **r} for c, r in zip(CASES, results, strict=True)]
    args.out.write_text(json.dumps({"tokens": N, "cases": cases}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
