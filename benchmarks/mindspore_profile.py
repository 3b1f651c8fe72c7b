"""Where a MindSpore model's step spends its time, per operator type (MindSpore's profiler, CPU backend), and
one GEMM of FourCastNet small's MLP shape timed in MindSpore and in torch (each in its own process).

    .venv/bin/python benchmarks/mindspore_profile.py --model aigoms --preset small \
        --out runs/bench/mindspore_profile_aigoms.json

Prints, for inference and for a training step (forward, backward, FusedAdamW), the operator types by total
kernel time per step, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GEMM = (512, 256, 1024)  # tokens x embed @ embed x hidden: the small preset's fc1 for one sample


def _profile(step, steps: int, directory: Path) -> dict[str, float]:
    from mindspore.profiler import Profiler

    for _ in range(3):
        step()
    profiler = Profiler(output_path=str(directory))
    for _ in range(steps):
        step()
    profiler.stop()
    profiler.analyse()
    table = next(directory.rglob("cpu_op_type_info_0.csv"))
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    return {row["op_type"]: float(row["total_compute_time"]) / steps for row in rows}


def profile_model(model: str, preset: str, steps: int) -> dict[str, dict[str, float]]:
    """Kernel ms per step by op type of the MindSpore backend's bench steps (``earthport bench``'s: inference,
    and the trainer's step with masked MSE, clipping and ``FusedAdamW``), GRAPH mode."""
    from earthport.bench.steps import BenchSpec
    from earthport.workflows.bench import build_steps

    bench = build_steps(BenchSpec(model=model, preset=preset, framework="mindspore", energy="none"))

    def fenced(step):
        return lambda: (step(), bench.sync())

    with tempfile.TemporaryDirectory() as tmp:
        inference = _profile(fenced(bench.infer), steps, Path(tmp) / "infer")
        training = _profile(fenced(bench.train), steps, Path(tmp) / "train")
    return {"infer": inference, "train": training}


def gemm_ms(repeats: int) -> float:
    """Median seconds of one fp32 GEMM in a compiled MindSpore graph (CPU)."""
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE)
    m, k, n = GEMM
    a, b = (ms.Tensor(np.random.default_rng(i).standard_normal(s, np.float32)) for i, s in enumerate(((m, k), (k, n))))

    @ms.jit
    def matmul(x, y):
        return ms.ops.matmul(x, y)

    return _median(lambda: matmul(a, b).asnumpy(), repeats)


def gemm_torch(repeats: int) -> float:
    import torch

    m, k, n = GEMM
    a, b = torch.randn(m, k), torch.randn(k, n)
    return _median(lambda: (a @ b).numpy(), repeats)


def _median(call, repeats: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _child(function: str, repeats: int) -> float:
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import mindspore_profile as p; "
    code += f"print(p.{function}({repeats}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fourcastnet", help="a name in earthport.models.registry")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/mindspore_profile.json"))
    args = parser.parse_args()
    gemm = {"shape": GEMM, "torch_s": _child("gemm_torch", 50), "mindspore_s": _child("gemm_ms", 50)}
    profile = profile_model(args.model, args.preset, args.steps)
    for kind, ops in profile.items():
        total = sum(ops.values())
        print(f"\n{kind}: {total:.1f} ms of kernel time per step")
        print(f"{'op type':<24}{'ms/step':>10}{'share':>8}")
        for name, ms_per_step in sorted(ops.items(), key=lambda item: -item[1])[:15]:
            print(f"{name:<24}{ms_per_step:>10.2f}{ms_per_step / total:>8.1%}")
    print(f"\nGEMM {GEMM[0]}x{GEMM[1]} @ {GEMM[1]}x{GEMM[2]}: torch {gemm['torch_s'] * 1e3:.2f} ms, "
          f"MindSpore {gemm['mindspore_s'] * 1e3:.2f} ms ({gemm['mindspore_s'] / gemm['torch_s']:.1f}x)")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model, "preset": args.preset, "profile_ms_per_step": profile, "gemm": gemm}
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
