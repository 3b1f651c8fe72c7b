"""AI-GOMS's token FFT in MindSpore: native ``ops.rfft/irfft`` against the four-step (factorised) transform, and
torch's for reference, at the paper's length N = 16,200 tokens, rfft -> irfft over the token axis of [B, N, C]
(norm "ortho"), forward and forward + backward, GRAPH mode, each backend in its own process (peak RSS per process).

    .venv/bin/python benchmarks/fft_1d.py --channels 512 --repeats 10 --out runs/bench/fft_1d.json

The DFT-as-matmul path is not run at this length: its matrix pair alone would be 16,200 x 8,101 x 2 float32 in two
layouts (about 2.1 GB); the table gives that size beside the four-step transform's constants.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _median_ms(call, repeats: int) -> float:
    call()
    call()  # compile and warm up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return 1000 * float(np.median(times))


def mindspore_roundtrip(n: int, backend: str):
    """(rfft -> irfft of [B, n, C] along dim 1 with the spectrum scaled, the gradient of its sum), not compiled:
    what this benchmark times and ``aigoms_memory.py`` measures."""
    import mindspore as ms

    from earthport.models.layers.mindspore_fft import IRFFT, RFFT

    rfft, irfft = RFFT(n, dim=1, norm="ortho", backend=backend), IRFFT(n, dim=1, norm="ortho", backend=backend)

    def roundtrip(t):
        re, im = rfft(t)
        return irfft(re * 1.5, im * 1.5)

    def total(t):
        return roundtrip(t).sum()

    return roundtrip, ms.grad(total)


def measure(backend: str, n: int, channels: int, batch: int, repeats: int) -> dict:
    """Median ms of forward and forward + backward, and peak RSS, in this process."""
    x = np.random.default_rng(0).standard_normal((batch, n, channels)).astype(np.float32)
    if backend == "torch":
        import torch

        tensor = torch.from_numpy(x)

        def forward():
            return torch.fft.irfft(torch.fft.rfft(tensor, dim=1, norm="ortho") * 1.5, n=n, dim=1, norm="ortho")

        leaf = tensor.clone().requires_grad_()

        def both():
            torch.fft.irfft(torch.fft.rfft(leaf, dim=1, norm="ortho") * 1.5, n=n, dim=1, norm="ortho").sum().backward()

        forward_ms, both_ms = _median_ms(forward, repeats), _median_ms(both, repeats)
    else:
        import mindspore as ms

        ms.set_context(mode=ms.GRAPH_MODE)
        roundtrip, gradient = mindspore_roundtrip(n, backend)
        forward_fn, grad_fn = ms.jit(roundtrip), ms.jit(gradient)
        tensor = ms.Tensor(x)
        forward_ms = _median_ms(lambda: forward_fn(tensor).asnumpy(), repeats)
        both_ms = _median_ms(lambda: grad_fn(tensor).asnumpy(), repeats)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"forward_ms": forward_ms, "forward_backward_ms": both_ms, "peak_rss_mb": rss_mb}


def constants_mb(backend: str, n: int) -> float:
    """Float32 constants each path holds for rfft + irfft of length n."""
    if backend == "factorised":
        from earthport.models.layers.dft import factor_pair

        p, q = factor_pair(n)
        return 2 * 4 * 2 * (p * p + q * q + p * q) / 2**20 + 8 * (n // 2) / 2**20
    if backend == "matmul":
        return 4 * 2 * (2 * n * (n // 2 + 1) + 2 * (n // 2 + 1) * n) / 2**20  # rfft pair + c2r, both layouts
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16200)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/fft_1d.json"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.tokens, args.channels, args.batch, args.repeats)))
        return
    rows = {}
    for backend in ("torch", "native", "factorised"):
        command = [sys.executable, __file__, "--child", backend, "--tokens", str(args.tokens), "--channels",
                   str(args.channels), "--batch", str(args.batch), "--repeats", str(args.repeats)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        rows[backend] = {**measured, "constants_mb": constants_mb(backend, args.tokens)}
    rows["matmul"] = {"constants_mb": constants_mb("matmul", args.tokens), "note": "not run: the matrices alone"}
    print(f"rfft -> irfft over N={args.tokens} tokens, [B={args.batch}, N, C={args.channels}], norm ortho, GRAPH")
    print(f"{'backend':<12}{'forward ms':>12}{'fwd+bwd ms':>12}{'peak RSS MB':>13}{'constants MB':>14}")
    for name, row in rows.items():
        cells = [f"{row[k]:>12.1f}" if k in row else f"{'—':>12}" for k in ("forward_ms", "forward_backward_ms")]
        rss = f"{row['peak_rss_mb']:>13.0f}" if "peak_rss_mb" in row else f"{'—':>13}"
        print(f"{name:<12}{''.join(cells)}{rss}{row['constants_mb']:>14.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"tokens": args.tokens, "channels": args.channels, "batch": args.batch,
                                    "rows": rows}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
