"""``earthport study | report``: the whole job on built-in data, and its report from the records."""

from __future__ import annotations

import argparse
from pathlib import Path

from earthport.cli.bench import energy_estimate
from earthport.cli.common import OVERWRITE, QUIET, names, positive_int
from earthport.config import DEVICES


def cmd_study(args: argparse.Namespace) -> int:
    from earthport.report.console import print_frame
    from earthport.report.study_report import headline_rmse
    from earthport.workflows.study import run_study

    record = run_study(args.out, preset=args.preset, frameworks=args.frameworks, device=args.device,
                       scale=args.scale, tdp_watts=args.energy_estimate, progress=not args.quiet,
                       overwrite=args.overwrite, models=args.models, nproc=args.nproc)  # fmt: skip
    for name, table in headline_rmse(args.out).items():
        print_frame(table, title=f"{name}: RMSE on the test years (ACC and plots in the report)")
    for framework, reason in record["skipped_frameworks"].items():
        print(f"{framework}: {reason}")
    failed = record["failed"]
    print(f"{len(record['stages']) - len(failed)} of {len(record['stages'])} stages done in {record['seconds']:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""))  # fmt: skip
    print(f"report: {record['report']}")
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> None:
    from earthport.report.study_report import write_study_report

    print(f"report: {write_study_report(args.study)}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study", parents=[QUIET, OVERWRITE], help="migrate, verify and measure on built-in data; then the report"
    )
    p.add_argument("--out", type=Path, default=Path("runs/study"))
    p.add_argument("--preset", default="tiny", help="model size preset (default tiny)")
    p.add_argument("--models", type=names, help="comma-separated model names (default: every model)")
    p.add_argument("--frameworks", type=names, help="comma-separated (default: every framework installed)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--nproc", type=positive_int, default=1, metavar="N",
                   help="also train each model on its first data set in N data-parallel processes (same global "
                        "batch; the training table's processes column)")  # fmt: skip
    p.add_argument("--scale", default="full", choices=["full", "quick"], help="quick: minutes, for checks only")
    p.add_argument("--energy-estimate", type=energy_estimate, metavar="tdp=WATTS",
                   help="benches add TDP x time, labelled as an estimate (for machines without a meter)")  # fmt: skip
    p.set_defaults(func=cmd_study)
    p = sub.add_parser("report", parents=[QUIET], help="rebuild a study's Markdown/HTML report from its records")
    p.add_argument("study", type=Path, help="the study directory (earthport study --out)")
    p.set_defaults(func=cmd_report)
