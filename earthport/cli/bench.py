"""``earthport bench``: time and meter one model's inference and training steps in one framework, write a record.

The measurement runs in a worker process of its own (one framework per process; see
``earthport.workflows.bench``); this process prints the table and writes the record.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from earthport.bench.steps import DEFAULT_DATASET_SIZE
from earthport.cli.common import OVERWRITE, count, framework_arguments, positive_float, positive_int
from earthport.config import DEVICES
from earthport.models.registry import DEFAULT as DEFAULT_MODEL


def energy_estimate(text: str) -> float:
    """``tdp=WATTS`` -> WATTS."""
    key, sep, value = text.partition("=")
    try:
        watts = float(value)
    except ValueError:
        watts = float("nan")
    if key.strip().lower() != "tdp" or not sep or not watts > 0:
        raise argparse.ArgumentTypeError(f"energy estimate {text!r} is not tdp=WATTS, e.g. tdp=65")
    return watts


def energy_meters(text: str) -> str:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--energy: expected auto, none or meter names, e.g. nvml,rapl")
    return ",".join(names)


def cmd_bench(args: argparse.Namespace) -> None:
    from earthport.bench.steps import BenchSpec
    from earthport.workflows.bench import bench

    spec = BenchSpec(
        model=args.model, preset=args.preset, framework=args.framework, device=args.device,
        precision=args.precision, batch_size=args.batch_size, repeats=args.repeats, warmup=args.warmup,
        dataset_size=args.dataset_size, energy=args.energy, tdp_watts=args.energy_estimate, ms_mode=args.ms_mode,
        compile=args.compile, threads=args.threads, budget_s=args.time_budget,
        activation_checkpointing=args.activation_checkpointing,
    )  # fmt: skip
    payload, path = bench(spec, args.out, overwrite=args.overwrite)
    print_bench(payload)
    print(f"wrote {path}")


def print_bench(payload: dict) -> None:
    """Median and IQR of each step in ms, samples/s and J/step (or why not) as a rich table."""
    from rich.table import Table

    from earthport.report.console import stdout

    run = f"{payload['framework']} ({payload['mode']}) · {payload['device']['description']}"
    title = f"{payload['model']} {payload['preset']} · {run} · {payload['precision']} · batch {payload['batch_size']}"
    table = Table(title=title, title_justify="left")
    for column in ("step", "median ms", "IQR ms", "steps timed", "samples/s", "J/step"):
        table.add_column(column, justify="left" if column in ("step", "J/step") else "right")
    reasons = []
    for phase in ("infer", "train_step"):
        timing, energy = payload[phase], payload["energy"]["per_step"][phase]
        throughput = timing["throughput_samples_per_s"]
        if isinstance(energy, str) and energy not in reasons:
            reasons.append(energy)
        table.add_row(
            phase, f"{timing['median'] * 1e3:.3g}", f"{timing['iqr'] * 1e3:.2g}", str(timing["count"]),
            f"{throughput:.4g}" if isinstance(throughput, float) else throughput, _joules(energy),
        )  # fmt: skip
    stdout.print(table)
    for reason in reasons:
        print(f"energy {reason}")
    epoch = payload["epoch"]
    print(f"epoch of {epoch['dataset_size']} samples ≈ {epoch['seconds']:.4g} s (estimate: {epoch['note']})")


def _joules(energy: dict | str) -> str:
    if isinstance(energy, str):
        return "unavailable"
    source = energy["source"]
    label = f"estimate, {source}" if energy["estimate"] and "estimate" not in source else source
    return f"{energy['joules_per_step']:.4g} J, {label}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", parents=[OVERWRITE], help="time and meter a model's inference and training steps; write a record"
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    p.add_argument("--preset", default="tiny", help="size preset: tiny, small or paper (default tiny)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="cuda also means ROCm")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--repeats", type=positive_int, default=20, help="timed steps per phase (default 20)")
    p.add_argument("--warmup", type=count, default=3, help="untimed steps first: compile, allocate (default 3)")
    p.add_argument("--dataset-size", type=positive_int, default=DEFAULT_DATASET_SIZE,
                   help="samples per epoch for the epoch estimate (default: a year of 6-hourly fields)")  # fmt: skip
    p.add_argument("--energy", type=energy_meters, default="auto", help="auto, none or meter names (nvml,rapl)")
    p.add_argument("--energy-estimate", type=energy_estimate, metavar="tdp=WATTS",
                   help="also estimate energy as WATTS x time, labelled; used where no meter measures")  # fmt: skip
    p.add_argument("--compile", action="store_true", help="torch: torch.compile the model (mode 'compiled')")
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="the training step recomputes the blocks in the backward (memory for time)")
    p.add_argument("--threads", type=positive_int, help="CPU threads (torch intra-op, MindSpore kernel threads)")
    p.add_argument("--time-budget", type=positive_float, metavar="SECONDS", help="stop timing a phase after this long")
    p.add_argument("--out", type=Path, help="record (default runs/bench/<model>-<preset>-<framework>-...json)")
    framework_arguments(p, "torch")
    p.set_defaults(func=cmd_bench)
