"""Data-parallel scaling: time per epoch, samples/s and efficiency of ``earthport train --nproc N`` for N = 1, 2, ...
processes on this machine, per model and framework (torch's elastic launcher with DDP over gloo; MindSpore's msrun).

Weak scaling, as the paper's chip counts: every process keeps ``--batch-size`` samples a step, so N processes take
N times the global batch and 1/N of the steps of an epoch. Each run is a real ``earthport train`` on generated data in
earthport's layout (``--grid``, ``--samples`` training samples an epoch) for ``--epochs`` epochs; its record gives
the epochs' seconds (the ranks' mean, ``training_loop``) and the median of all but the first epoch (compilation,
warm-up) is its time per epoch. samples/s = samples an epoch / time per epoch; efficiency = samples/s at N over N
times samples/s at 1 (1.0: perfect scaling). Each process gets an equal share of the cores (``OMP_NUM_THREADS``
and, for MindSpore, ``train.ms_threads`` = cores / N), and the processes count N = 1, 2, ... take turns for
``--rounds`` rounds (A B A B); the table shows medians over the rounds and how busy the machine was
(``os.getloadavg()`` before each run).

    .venv/bin/python benchmarks/data_parallel.py --out runs/bench/data_parallel.json

A quick look: ``--models fourcastnet --frameworks torch --rounds 1 --epochs 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {"fourcastnet": "atmosphere", "graphcast": "atmosphere", "aigoms": "ocean"}


def _generate(kind: str, grid: tuple[int, int], samples: int, folder: Path) -> Path:
    """Three years (train, valid, test) with ``samples`` training samples and a few to spare."""
    from earthport.data.generate import generate

    out = folder / kind
    if not out.exists():
        generate(out, kind, grid=grid, years=3, steps_per_year=samples + 8, seed=5)
    return out


def _train(model: str, framework: str, nproc: int, data: Path, out: Path, args: argparse.Namespace) -> dict:
    """One ``earthport train --nproc`` run: its record's epoch seconds, or why it failed."""
    threads = max(1, (os.cpu_count() or 1) // nproc)
    command = [sys.executable, "-m", "earthport", "train", "--model", model, "--data", str(data), "--out", str(out),
               "--framework", framework, "--device", "cpu", "--batch-size", str(args.batch_size), "--epochs",
               str(args.epochs), "--nproc", str(nproc), "--overwrite", "--quiet", "--set",
               f"train.max_train_samples={args.samples}", "--set", "train.max_valid_samples=8"]  # fmt: skip
    if framework == "mindspore":
        command += ["--set", f"train.ms_threads={threads}"]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    load = os.getloadavg()[0]
    began = time.perf_counter()
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no message"])[-1], "load": load}
    record = json.loads((out / "record.json").read_text())
    seconds = [entry["seconds"] for entry in record["history"]]
    return {"epoch_seconds": seconds, "epoch_s": statistics.median(seconds[1:] or seconds), "wall_s": wall,
            "samples": record["epoch_samples"], "global_batch": record["global_batch_size"], "load": load,
            "parameters": record["parameters"]}  # fmt: skip


def _rows(results: dict[str, dict[str, dict[int, list[dict]]]]) -> list[dict]:
    rows = []
    for model, frameworks in results.items():
        for framework, by_count in frameworks.items():
            base = None
            for nproc, runs in by_count.items():
                good = [run for run in runs if "error" not in run]
                if not good:
                    rows.append({"model": model, "framework": framework, "processes": nproc,
                                 "time/epoch (s)": f"unavailable: {runs[0]['error']}"})  # fmt: skip
                    continue
                epoch = statistics.median(run["epoch_s"] for run in good)
                rate = good[0]["samples"] / epoch
                base = rate if nproc == 1 else base
                rows.append({
                    "model": model, "framework": framework, "processes": nproc,
                    "global batch": good[0]["global_batch"], "time/epoch (s)": round(epoch, 3),
                    "samples/s": round(rate, 1),
                    "efficiency": round(rate / (nproc * base), 2) if base else "unavailable: no 1-process run",
                    "load before": round(max(run["load"] for run in good), 1), "runs": len(good),
                })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fourcastnet,graphcast,aigoms")
    parser.add_argument("--frameworks", default="torch,mindspore")
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts; 1 is the baseline")
    parser.add_argument("--grid", default="32,64", help="lat,lon of the generated data")
    parser.add_argument("--samples", type=int, default=256, help="training samples an epoch")
    parser.add_argument("--batch-size", type=int, default=4, help="per process")
    parser.add_argument("--epochs", type=int, default=4, help="the first is left out of the time per epoch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/data_parallel.json"))
    args = parser.parse_args()
    grid = tuple(int(n) for n in args.grid.split(","))
    counts = [int(n) for n in args.processes.split(",")]
    models, frameworks = args.models.split(","), args.frameworks.split(",")
    if unknown := set(models) - set(MODELS):
        parser.error(f"unknown models {sorted(unknown)}; expected some of {list(MODELS)}")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results: dict = {model: {framework: {n: [] for n in counts} for framework in frameworks} for model in models}
    with tempfile.TemporaryDirectory(prefix="earthport-dp-") as scratch:
        folder = Path(scratch)
        for model in models:
            data = _generate(MODELS[model], grid, args.samples, folder)
            for framework in frameworks:
                for round_ in range(args.rounds):
                    for nproc in counts:
                        run = _train(model, framework, nproc, data, folder / "run", args)
                        results[model][framework][nproc].append(run)
                        shown = run.get("error") or f"{run['epoch_s']:.3f} s/epoch"
                        print(f"{model} {framework} round {round_ + 1} N={nproc}: {shown}", flush=True)
    rows = _rows(results)
    import pandas as pd

    from earthport.report.console import print_frame

    print_frame(pd.DataFrame(rows), title=f"data-parallel scaling on {os.cpu_count()} cores, grid {grid}, "
                f"{args.samples} samples an epoch, batch {args.batch_size} per process")  # fmt: skip
    record = {"started": started, "grid": grid, "samples": args.samples, "batch_size": args.batch_size,
              "epochs": args.epochs, "rounds": args.rounds, "rows": rows, "runs": results,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
