"""A model's inference and training step time: PyTorch vs earthport's MindSpore port (vs MindEarth's AFNONet).

Each framework runs in its own process (MindSpore's CPU threads keep spinning after work and slow torch in the
same process), alternating A B A B for ``--rounds`` rounds. A process builds the backend's bench steps for
``--model`` at ``--preset`` (``bench_steps``, what ``earthport bench`` times: one fixed random batch; inference
in eval mode without gradients; a training step is the trainer's forward, masked MSE, backward, gradient clipping
and AdamW, ``FusedAdamW`` in MindSpore), runs ``--warmup`` steps of each (MindSpore compiles its graphs there;
their seconds are kept apart as ``first_s``) and times ``--repeats`` steps, each fenced by its result's host copy.
Reported: medians over all timed steps, interquartile ranges, the ratio to torch, each process's peak RSS after
its inference and after its training phase, and how busy the machine was (it may be shared): ``os.getloadavg()``
before and after each process (a worker's own two busy threads add about 2 to the 1-minute load) and the cores
that other processes kept busy meanwhile (``/proc/stat`` less the worker's own CPU time; the table shows the
largest over a runner's processes; 0 is a quiet machine, 2 both cores taken).

    .venv/bin/python benchmarks/framework_speed.py --preset small --out runs/bench/framework_speed.json
    .venv/bin/python benchmarks/framework_speed.py --model aigoms --preset small --rounds 3 --max-others-cpu 0.1 \
        --runners torch,mindspore,mindspore-pynative --out runs/bench/framework_speed_aigoms_small.json
    .venv/bin/python benchmarks/framework_speed.py --model aigoms --preset paper --rounds 1 --warmup 0 \
        --repeats 1 --max-rss-gb 21 --timeout-s 900 --out runs/bench/framework_speed_aigoms_paper.json
    .venv/bin/python benchmarks/framework_speed.py --model graphcast --preset paper --phases infer --rounds 1 \
        --warmup 1 --repeats 2 --max-rss-gb 21 --timeout-s 1200 --out runs/bench/framework_speed_graphcast_paper.json

``--phases infer`` times inference only; ``--precision bf16`` runs it under each framework's mixed precision.

``--max-others-cpu 0.1`` sets aside a process during which other processes kept more than a tenth of a core busy
and runs it again after a minute (``--retries`` times at most). A process above ``--max-rss-gb`` of resident
memory, or with the machine's available memory under 1 GiB (it is shared), or running past ``--timeout-s``, is
stopped and reported ``unavailable: <why>``, with the phase it was in, the RSS it reached and the phases it
finished.

MindEarth's AFNONet (``pip install --no-deps mindearth-ascend==0.3.0``, i.e. ``make bench-setup``; FourCastNet
only) is timed when installed, at the same sizes; it returns patches, not fields, and has no spectral block count
(always 8); its training step is a plain mean square of its output and MindSpore's AdamW, no clipping.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

RUNNERS = {  # runner: (framework, MindSpore mode; torch runs eagerly)
    "torch": ("torch", "graph"),
    "mindspore": ("mindspore", "graph"),
    "mindspore-pynative": ("mindspore", "pynative"),
    "mindearth": ("mindspore", "graph"),
}
PHASES = ("infer", "train")
MIN_AVAILABLE_GB = 1.0  # the machine's memory is shared: stop a worker before the kernel's OOM killer picks one


def _steps(args: argparse.Namespace):
    """The runner's steps: the backend's bench steps, or MindEarth's AFNONet."""
    if args.worker == "mindearth":
        return _mindearth_steps(args.preset, args.batch_size)
    from earthport.bench.steps import BenchSpec
    from earthport.workflows.bench import build_steps

    framework, mode = RUNNERS[args.worker]
    return build_steps(BenchSpec(model=args.model, preset=args.preset, framework=framework, ms_mode=mode,
                                 batch_size=args.batch_size, energy="none", precision=args.precision,
                                 activation_checkpointing=args.activation_checkpointing))  # fmt: skip


def _mindearth_steps(preset: str, batch: int) -> SimpleNamespace:
    import mindspore as ms
    from mindearth.cell import AFNONet

    from earthport.models.fourcastnet.config import PRESETS

    config = PRESETS[preset]
    ms.set_context(mode=ms.GRAPH_MODE)  # as MindEarth runs it; this process builds nothing else
    ms.set_seed(0)
    model = AFNONet(
        image_size=config.img_size, in_channels=config.in_chans, out_channels=config.out_chans,
        patch_size=config.patch_size, encoder_depths=config.depth, encoder_embed_dim=config.embed_dim,
        mlp_ratio=int(config.mlp_ratio), dropout_rate=1.0,
    )  # fmt: skip
    x = ms.Tensor(np.random.default_rng(0).standard_normal((batch, config.in_chans, *config.img_size), np.float32))
    optimizer = ms.experimental.optim.AdamW(model.trainable_params(), lr=1e-4)

    def objective(inputs):
        return model(inputs).square().mean()

    grad = ms.value_and_grad(objective, None, optimizer.parameters)

    @ms.jit
    def train_step(inputs):
        loss, grads = grad(inputs)
        optimizer(grads)
        return loss

    def infer():
        model.set_train(False)
        model(x).asnumpy()

    def train():
        model.set_train(True)
        train_step(x).asnumpy()

    return SimpleNamespace(infer=infer, train=train, sync=lambda: None, threads={})


def worker(args: argparse.Namespace) -> None:
    """Measure one runner in this process; prints ``PHASE <name>`` as a phase starts, ``DONE <json>`` as it ends
    (what a stopped worker still reports) and ``RESULT <json>`` at the end."""
    from earthport.bench.timing import time_steps, warm_up
    from earthport.host import host_peak_rss_mb

    began = time.perf_counter()
    steps = _steps(args)
    framework = RUNNERS[args.worker][0]
    result = {"version": importlib.import_module(framework).__version__, "threads": steps.threads,
              "build_s": time.perf_counter() - began}  # fmt: skip
    for phase in args.phases:
        print(f"PHASE {phase}", flush=True)
        step = getattr(steps, phase)
        result[f"{phase}_first_s"] = warm_up(step, args.warmup, steps.sync)
        result[phase] = time_steps(step, 0, args.repeats, steps.sync)
        result[f"{phase}_rss_mb"] = host_peak_rss_mb()
        print("DONE " + json.dumps({k: v for k, v in result.items() if k.startswith(phase)}), flush=True)
    result["wall_s"] = time.perf_counter() - began
    print("RESULT " + json.dumps(result), flush=True)


def _rss_gb(pid: int) -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**30


def _available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("inf")


def _busy_s() -> float:
    """CPU seconds all processes have used since boot (``/proc/stat``: user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7)) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _watch(child: subprocess.Popen, args: argparse.Namespace) -> tuple[float, str]:
    """Wait for ``child``, stopping it past the memory or time limits: (its peak RSS in GB, why it was stopped)."""
    began, peak = time.monotonic(), 0.0
    while child.poll() is None:
        time.sleep(0.5)
        rss, available, elapsed = _rss_gb(child.pid), _available_gb(), time.monotonic() - began
        peak = max(peak, rss)
        reason = ""
        if rss > args.max_rss_gb:
            reason = f"its RSS reached {rss:.1f} GB, over --max-rss-gb {args.max_rss_gb:g}"
        elif available < MIN_AVAILABLE_GB:
            reason = f"the machine had {available:.1f} GB available at {rss:.1f} GB RSS"
        elif args.timeout_s and elapsed > args.timeout_s:
            reason = f"it ran past --timeout-s {args.timeout_s:g}"
        if reason:
            child.kill()
            child.wait()
            return peak, f"{reason} after {elapsed:.0f} s"
    return peak, ""


def run_watched(command: list[str], args: argparse.Namespace) -> tuple[str, str, int, str, dict]:
    """Run a worker ``command`` under ``_watch``'s limits: (stdout, stderr, exit status, why it was stopped or "",
    the machine's load meanwhile: load averages, the watched peak RSS and the cores other processes kept busy)."""
    load_before, busy, ours, began = os.getloadavg(), _busy_s(), _children_cpu_s(), time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=os.environ.copy())
        peak_gb, stopped = _watch(child, args)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    others = (_busy_s() - busy) - (_children_cpu_s() - ours)  # CPU seconds that other processes took meanwhile
    load = {"load_before": load_before, "load_after": os.getloadavg(), "watched_peak_rss_gb": peak_gb,
            "others_cpu_per_s": max(others, 0.0) / (time.monotonic() - began)}  # fmt: skip
    return stdout, stderr, child.returncode, stopped, load


def _run(runner: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", runner, "--model", args.model, "--preset", args.preset,
               "--batch-size", str(args.batch_size), "--warmup", str(args.warmup),
               "--repeats", str(args.repeats), "--phases", ",".join(args.phases), "--precision", args.precision]
    command += ["--activation-checkpointing"] * args.activation_checkpointing
    stdout, stderr, code, stopped, load = run_watched(command, args)
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if stopped or code or not lines:
        phases = [line.split()[1] for line in stdout.splitlines() if line.startswith("PHASE ")]
        where = f"in its {phases[-1]} phase" if phases else "while building the model"
        tail = [ln for ln in stderr.strip().splitlines() if not ln.startswith("[WARNING")][-1:]
        tail = tail or [f"exit status {code}"]
        why = f"stopped {where}: {stopped}" if stopped else f"failed {where}: {tail[0][:300]}"
        done = [json.loads(line[len("DONE ") :]) for line in stdout.splitlines() if line.startswith("DONE ")]
        return {"unavailable": f"{runner} {why}", "completed_phases": done, **load}
    return {**json.loads(lines[0][len("RESULT ") :]), **load}


def _summary(times: list[float]) -> dict:
    values = np.asarray(times)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median_s": float(median), "iqr_s": float(q3 - q1), "n": int(values.size)}


def _collect(runners: list[str], args: argparse.Namespace) -> dict[str, dict]:
    """Each runner's processes, A B A B; a runner that fails once is not started again. A process during which
    other processes took more than ``--max-others-cpu`` cores is set aside (under ``discarded``) and run again
    after a minute, up to ``--retries`` times; the last try is kept whatever the machine did."""
    collected: dict[str, dict] = {r: {"processes": [], "discarded": []} for r in runners}
    for round_ in range(args.rounds):
        for runner in runners:
            if "unavailable" in collected[runner]:
                continue
            for attempt in range(args.retries + 1):
                result = _run(runner, args)
                busy = result["others_cpu_per_s"]
                if "unavailable" in result or busy <= args.max_others_cpu or attempt == args.retries:
                    break
                collected[runner]["discarded"].append(result)
                print(f"round {round_ + 1} {runner}: set aside, others took {busy:.2f} cores", flush=True)
                time.sleep(60)
            collected[runner]["processes"].append(result)
            if "unavailable" in result:
                collected[runner]["unavailable"] = result["unavailable"]
                print(f"round {round_ + 1} {runner}: {result['unavailable']}", flush=True)
                continue
            times = ", ".join(f"{phase} {np.median(result[phase]) * 1e3:.1f} ms" for phase in args.phases)
            print(f"round {round_ + 1} {runner}: {times}, load {result['load_before'][0]:.2f}, "
                  f"others' CPU {busy:.2f} cores", flush=True)  # fmt: skip
    return collected


def _table(collected: dict[str, dict], title: str, phases: list[str]) -> dict:
    """Medians, IQRs and ratios to torch per runner and phase; printed as a rich table."""
    import pandas as pd

    from earthport.report.console import print_frame

    table = {}
    for runner, data in collected.items():
        done = [p for p in data["processes"] if "unavailable" not in p]
        if "unavailable" in data:
            table[runner] = {"unavailable": data["unavailable"], "processes": data["processes"],
                             "discarded": data["discarded"]}  # fmt: skip
            continue
        entry = {phase: _summary([t for p in done for t in p[phase]]) for phase in phases}
        for phase in phases:
            entry[phase]["first_s"] = [t for p in done for t in p[f"{phase}_first_s"]]
            entry[phase]["peak_rss_mb"] = max(p[f"{phase}_rss_mb"] for p in done)
        table[runner] = {**entry, "version": done[0]["version"], "threads": done[0]["threads"],
                         "others_cpu_per_s": max(p["others_cpu_per_s"] for p in done), "processes": done,
                         "discarded": data["discarded"]}  # fmt: skip
    print_frame(pd.DataFrame([_row(runner, entry, table.get("torch", {}), phases) for runner, entry in table.items()]),
                title=title, floatfmt=".8g")  # fmt: skip
    return table


def _row(runner: str, entry: dict, reference: dict, phases: list[str]) -> dict:
    """One table row; adds ``ratio_to_torch`` to ``entry``. A stopped runner shows the phases it finished."""
    row: dict = {"runner": runner}
    if "unavailable" in entry:
        for part in entry["processes"][-1].get("completed_phases", []):
            phase = next(k for k in part if k in PHASES)
            row |= {f"{phase} ms": round(float(np.median(part[phase])) * 1e3, 1),
                    f"{phase} RSS MB": round(part[f"{phase}_rss_mb"])}  # fmt: skip
        return row | {"note": entry["unavailable"]}
    for phase in phases:
        ratio = entry[phase]["median_s"] / reference[phase]["median_s"] if phase in reference else float("nan")
        entry[phase]["ratio_to_torch"] = ratio
        first = entry[phase]["first_s"]
        row |= {f"{phase} ms": round(entry[phase]["median_s"] * 1e3, 1),
                f"{phase} IQR": round(entry[phase]["iqr_s"] * 1e3, 1), f"{phase} x torch": round(ratio, 2),
                f"{phase} first s": round(first[0], 1) if first else float("nan"),
                f"{phase} RSS MB": round(entry[phase]["peak_rss_mb"])}  # fmt: skip
    return row | {"others' CPU": round(entry["others_cpu_per_s"], 2)}


def _phases(text: str) -> list[str]:
    phases = [part for part in text.split(",") if part]
    if not phases or set(phases) - set(PHASES):
        raise argparse.ArgumentTypeError(f"phases {text!r}: expected some of {','.join(PHASES)}")
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fourcastnet", help="a name in earthport.models.registry")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="A B A B rounds; each process times --repeats steps")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (0 or more); kept as first_s")
    parser.add_argument("--runners", help=f"comma-separated of {list(RUNNERS)} (default: torch,mindspore and, "
                        "for fourcastnet, mindearth)")  # fmt: skip
    parser.add_argument("--phases", type=_phases, default=list(PHASES), help="comma-separated of infer,train")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--activation-checkpointing", action="store_true",
                        help="the training step recomputes the model's blocks in the backward")
    parser.add_argument("--max-rss-gb", type=float, default=18.0, help="stop a worker above this resident memory")
    parser.add_argument("--timeout-s", type=float, default=0, help="stop a worker after this long (0: never)")
    parser.add_argument("--max-others-cpu", type=float, default=float("inf"),
                        help="rerun a process during which other processes took more cores than this")  # fmt: skip
    parser.add_argument("--retries", type=int, default=3, help="reruns of a process, with --max-others-cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/framework_speed.json"))
    parser.add_argument("--worker", choices=list(RUNNERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    default = "torch,mindspore,mindearth" if args.model == "fourcastnet" else "torch,mindspore"
    runners = (args.runners or default).split(",")
    if unknown := set(runners) - set(RUNNERS):
        parser.error(f"unknown runners {sorted(unknown)}; expected some of {list(RUNNERS)}")
    if "mindearth" in runners and args.model != "fourcastnet":
        parser.error(f"mindearth has FourCastNet's AFNONet only, not {args.model}")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    collected = _collect(runners, args)
    title = (f"{args.model} {args.preset} {args.precision}, batch {args.batch_size}: median step (ms), IQR, "
             "first warm-up step (s)")
    record = {"model": args.model, "preset": args.preset, "batch_size": args.batch_size, "rounds": args.rounds,
              "repeats": args.repeats, "warmup": args.warmup, "started": started, "precision": args.precision,
              "results": _table(collected, title, args.phases),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
