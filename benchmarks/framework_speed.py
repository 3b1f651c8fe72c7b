"""FourCastNet inference and training step time: PyTorch vs earthport's MindSpore port (vs MindEarth's AFNONet).

Each framework runs in its own process (MindSpore's CPU threads keep spinning after work and slow torch in the
same process), alternating A B A B for ``--rounds`` rounds; each process warms up (MindSpore compiles its graphs)
and then times ``--repeats`` inference steps and training steps (forward, backward, AdamW update), fenced by a
host copy of the result. Reported: medians over all timed steps, interquartile ranges, and the ratio to torch.

    .venv/bin/python benchmarks/framework_speed.py --preset small --out runs/bench/framework_speed.json

MindEarth's AFNONet (``pip install --no-deps mindearth-ascend==0.3.0``, i.e. ``make bench-setup``) is timed
when installed, at the same sizes; it returns patches, not fields, and has no spectral block count (always 8).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from earthport.bench.timing import time_steps  # the steps below fence themselves: each ends in a host copy

RUNNERS = ("torch", "mindspore", "mindearth")


def _torch_worker(config, batch: int, warmup: int, repeats: int) -> dict:
    import torch

    from earthport.models.fourcastnet.torch import FourCastNet

    torch.manual_seed(0)
    model = FourCastNet(config)
    x = torch.randn(batch, config.in_chans, *config.img_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def infer():
        with torch.no_grad():
            model(x).numpy()

    def train():
        optimizer.zero_grad(set_to_none=True)
        loss = (model(x) - x[:, : config.out_chans]).square().mean()
        loss.backward()
        optimizer.step()
        float(loss)

    model.eval()
    inference = time_steps(infer, warmup, repeats)
    model.train()
    return {"infer": inference, "train": time_steps(train, warmup, repeats), "threads": torch.get_num_threads()}


def _mindspore_worker(config, batch: int, warmup: int, repeats: int, mindearth: bool = False) -> dict:
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(0)
    model = _mindearth(config) if mindearth else _earthport_ms(config)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((batch, config.in_chans, *config.img_size), np.float32))
    if mindearth:
        optimizer = ms.experimental.optim.AdamW(model.trainable_params(), lr=1e-4)
    else:  # what earthport's MindSpore trainer uses
        from earthport.backends.mindspore.adamw import FusedAdamW

        optimizer = FusedAdamW(model.trainable_params(), lr=1e-4)

    def objective(inputs):
        return model(inputs).astype(ms.float32).square().mean()

    grad = ms.value_and_grad(objective, None, optimizer.parameters)

    @ms.jit
    def train_step(inputs):
        loss, grads = grad(inputs)
        optimizer(grads)
        return loss

    model.set_train(False)
    inference = time_steps(lambda: model(x).asnumpy(), warmup, repeats)
    model.set_train(True)
    return {"infer": inference, "train": time_steps(lambda: train_step(x).asnumpy(), warmup, repeats)}


def _earthport_ms(config):
    from earthport.models.fourcastnet.mindspore import FourCastNet

    return FourCastNet(config, fft_backend=os.environ.get("EARTHPORT_FFT", "auto"))


def _mindearth(config):
    from mindearth.cell import AFNONet

    return AFNONet(
        image_size=config.img_size, in_channels=config.in_chans, out_channels=config.out_chans,
        patch_size=config.patch_size, encoder_depths=config.depth, encoder_embed_dim=config.embed_dim,
        mlp_ratio=int(config.mlp_ratio), dropout_rate=1.0,
    )  # fmt: skip


def worker(args: argparse.Namespace) -> None:
    from earthport.models.fourcastnet.config import PRESETS

    config = PRESETS[args.preset]
    compile_start = time.perf_counter()
    if args.worker == "torch":
        result = _torch_worker(config, args.batch_size, args.warmup, args.repeats)
    else:
        result = _mindspore_worker(config, args.batch_size, args.warmup, args.repeats, args.worker == "mindearth")
    result["wall_s"] = time.perf_counter() - compile_start
    print("RESULT " + json.dumps(result))


def _run(runner: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", runner, "--preset", args.preset, "--batch-size",
               str(args.batch_size), "--warmup", str(args.warmup), "--repeats", str(args.repeats)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"unavailable": f"{runner} failed: {tail[0]}"}
    return json.loads(lines[0][len("RESULT ") :])


def _summary(times: list[float]) -> dict:
    values = np.asarray(times)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median_s": float(median), "iqr_s": float(q3 - q1), "n": int(values.size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="A B A B rounds; each process times --repeats steps")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runners", default="torch,mindspore,mindearth")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/framework_speed.json"))
    parser.add_argument("--worker", choices=RUNNERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    runners = args.runners.split(",")
    collected: dict[str, dict] = {r: {"infer": [], "train": []} for r in runners}
    for round_ in range(args.rounds):
        for runner in runners:
            result = _run(runner, args)
            if "unavailable" in result:
                collected[runner] = result
                continue
            for kind in ("infer", "train"):
                collected[runner][kind] += result[kind]
            print(f"round {round_ + 1} {runner}: infer {np.median(result['infer']) * 1e3:.1f} ms, "
                  f"train {np.median(result['train']) * 1e3:.1f} ms", flush=True)  # fmt: skip
    table = _table(collected)
    record = {"preset": args.preset, "batch_size": args.batch_size, "rounds": args.rounds, "repeats": args.repeats,
              "results": table, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


def _table(collected: dict) -> dict:
    table, reference = {}, None
    print(f"{'runner':<11}{'infer ms':>10}{'IQR':>8}{'x torch':>9}{'train ms':>10}{'IQR':>8}{'x torch':>9}")
    for runner, data in collected.items():
        if "unavailable" in data:
            table[runner] = data
            print(f"{runner:<11}{data['unavailable']}")
            continue
        row = {kind: _summary(data[kind]) for kind in ("infer", "train")}
        reference = reference or row
        for kind in row:
            row[kind]["ratio_to_torch"] = row[kind]["median_s"] / reference[kind]["median_s"]
        table[runner] = row
        cells = "".join(
            f"{row[k]['median_s'] * 1e3:>10.1f}{row[k]['iqr_s'] * 1e3:>8.1f}{row[k]['ratio_to_torch']:>9.2f}"
            for k in ("infer", "train")
        )
        print(f"{runner:<11}{cells}")
    return table


if __name__ == "__main__":
    main()
