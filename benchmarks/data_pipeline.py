"""Generation and statistics throughput and peak memory at a given grid (default: the paper's 721 x 1440 x 20).

Each phase runs in a fresh process so its peak resident memory (ru_maxrss) is its own:

    generate  earthport data generate: spin-up, then N six-hourly steps streamed to HDF5
    stats     one streaming pass (means, stds, climatology) over the written year file

Prints a table and writes JSON. Example (the figures in docs/performance.md):

    .venv/bin/python benchmarks/data_pipeline.py --grid 721x1440 --steps 32 --out runs/bench/data_pipeline.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path


def _generate(directory: str, grid: tuple[int, int], steps: int, queue: mp.Queue) -> None:
    from earthport.data.generate import GeneratedSeries, generate

    start = time.perf_counter()
    GeneratedSeries("atmosphere", *grid, 1, steps, seed=0)  # construction and spin-up alone
    spin_up = time.perf_counter() - start
    start = time.perf_counter()
    generate(directory, "atmosphere", grid, years=1, steps_per_year=steps, seed=0, progress=True)
    queue.put({"seconds": time.perf_counter() - start, "spin_up_seconds": spin_up, "peak_rss_mb": _peak_mb()})


def _stats(directory: str, queue: mp.Queue) -> None:
    from earthport.data.fcn import FcnDirectory
    from earthport.data.stats import compute_stats

    start = time.perf_counter()
    compute_stats(FcnDirectory(directory).series("train"), chunk=4, progress=True)
    queue.put({"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_mb()})


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _run(target, *args) -> dict:
    queue: mp.Queue = mp.get_context("spawn").Queue()
    process = mp.get_context("spawn").Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="721x1440")
    parser.add_argument("--steps", type=int, default=32, help="six-hourly steps to write (32 = 8 days)")
    parser.add_argument("--workdir", help="where to write the data (default: a temporary directory, removed)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/data_pipeline.json"))
    args = parser.parse_args()
    grid = tuple(int(v) for v in args.grid.split("x"))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="earthport-bench-"))
    try:
        generation = _run(_generate, str(workdir / "data"), grid, args.steps)
        size_mb = sum(f.stat().st_size for f in (workdir / "data").rglob("*.h5")) / 1e6
        statistics = _run(_stats, str(workdir / "data"))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    step_mb = 20 * grid[0] * grid[1] * 4 / 1e6
    rows = []
    for name, result in (("generate", generation), ("stats", statistics)):
        result["mb_per_s"] = size_mb / (result["seconds"] - result.get("spin_up_seconds", 0.0))
        rows.append((name, result["seconds"], result["mb_per_s"], result["peak_rss_mb"]))
    print(f"grid {grid[0]}x{grid[1]} x 20 channels, {args.steps} steps = {size_mb:.0f} MB ({step_mb:.0f} MB/step); "
          f"a year of 1460 steps is {1460 * step_mb / 1e3:.0f} GB")  # fmt: skip
    print(f"{'phase':<10}{'seconds':>10}{'MB/s':>10}{'peak RSS MB':>14}")
    for name, seconds, rate, peak in rows:
        print(f"{name:<10}{seconds:>10.1f}{rate:>10.1f}{peak:>14.0f}")
    print(f"(generation seconds include a {generation['spin_up_seconds']:.1f} s spin-up; MB/s excludes it. "
          "stats reads files just written, likely from the page cache)")  # fmt: skip
    record = {"grid": grid, "steps": args.steps, "size_mb": size_mb, "generate": generation, "stats": statistics,
              "machine": {"cpus": mp.cpu_count(), "platform": platform.platform()}}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
