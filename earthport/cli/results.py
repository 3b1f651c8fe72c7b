"""``earthport results list | show | compare | export | rebuild | table``: the index of run records."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from earthport.cli.common import OVERWRITE

SHOWN = {
    "id": "id", "kind": "kind", "created": "created", "model": "model", "preset": "preset",
    "framework": "framework", "device_description": "device", "precision": "precision", "batch_size": "batch",
    "path": "path",
}  # fmt: skip
TABLES = {"energy": ("bench",), "training": ("train",), "inference": ("infer", "bench")}


def _printable(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values print as an em dash (pandas' <NA> would print literally)."""
    return frame.astype(object).where(frame.notna(), "—")


def cmd_list(args: argparse.Namespace) -> None:
    from earthport.records import index as results
    from earthport.report.console import print_frame

    filters = {"framework": args.framework, "model": args.model, "device_name": args.device}
    frame = results.list_runs(args.kind, **filters)
    print_frame(_printable(frame[list(SHOWN)].rename(columns=SHOWN)), title=f"{len(frame)} runs in {_where()}")


def cmd_show(args: argparse.Namespace) -> None:
    from earthport.records import index as results
    from earthport.report.console import stdout

    run = results.get(args.id)
    stdout.print(f"run {run.id}: {run.path}")
    stdout.print_json(json.dumps(run.record))


def cmd_compare(args: argparse.Namespace) -> None:
    from earthport.records import index as results
    from earthport.report.console import print_frame

    print_frame(_printable(results.compare(args.ids, args.metric)), title="runs side by side")


def cmd_export(args: argparse.Namespace) -> None:
    from earthport import files
    from earthport.records import index as results

    files.check_output(args.file, args.overwrite)
    count = results.export(args.file, kind=args.kind, framework=args.framework)
    print(f"wrote {args.file} ({count} runs from {_where()})")


def cmd_rebuild(args: argparse.Namespace) -> None:
    from earthport.records import index as results

    counts = results.rebuild(args.roots or None)
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts["by_kind"].items())) or "none"
    gone = f"; dropped {counts['gone']} listed records whose files are gone" if counts["gone"] else ""
    print(
        f"indexed {counts['indexed']} records ({kinds}) in {_where()}; skipped {counts['skipped']} unreadable, "
        f"ignored {counts['ignored']} other JSON files{gone}"
    )


def cmd_table(args: argparse.Namespace) -> None:
    from earthport.metrics import to_markdown
    from earthport.records import index as results
    from earthport.report import efficiency
    from earthport.report.console import print_frame

    chosen = {rid: rec for kind in TABLES[args.table] for rid, rec in results.records(kind, model=args.model).items()}
    if args.table == "energy":
        baseline = results.get(args.baseline).id if args.baseline else None
        frame = efficiency.energy_efficiency(chosen, baseline)
    else:
        frame = getattr(efficiency, f"{args.table}_time")(chosen)
    print_frame(frame, title=f"{args.table}: {len(frame)} rows from {_where()}")
    if args.markdown:
        args.markdown.write_text(to_markdown(frame))
        print(f"wrote {args.markdown}")


def _where() -> Path:
    from earthport.records.index import index_path

    return index_path()


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("results", help="the index of run records: list, show, compare, export, rebuild, table")
    cmds = group.add_subparsers(dest="results_command", required=True)
    p = cmds.add_parser("list", help="indexed runs, oldest first")
    p.add_argument("--kind", help="train, infer, verify, bench, ...")
    p.add_argument("--framework", choices=["torch", "mindspore"])
    p.add_argument("--model")
    p.add_argument("--device", help="device name: cpu, cuda, npu, ...")
    p.set_defaults(func=cmd_list)
    p = cmds.add_parser("show", help="one run's record")
    p.add_argument("id", help="run id, or a unique prefix of it")
    p.set_defaults(func=cmd_show)
    p = cmds.add_parser("compare", help="runs side by side")
    p.add_argument("ids", nargs="+", help="run ids (or unique prefixes)")
    p.add_argument("--metric", action="append", help="dotted path in the record, e.g. latency_s.median (repeat)")
    p.set_defaults(func=cmd_compare)
    p = cmds.add_parser("export", parents=[OVERWRITE], help="the index as CSV (flat columns) or JSON (full records)")
    p.add_argument("file", type=Path, help="*.csv or *.json")
    p.add_argument("--kind")
    p.add_argument("--framework", choices=["torch", "mindspore"])
    p.set_defaults(func=cmd_export)
    p = cmds.add_parser("rebuild", help="recreate the index from the record files (repairs a damaged index)")
    p.add_argument("roots", nargs="*", type=Path,
                   help="directories to scan for *.json records (default: the folder holding the index, runs/); "
                        "records the old index lists are kept while their files exist")  # fmt: skip
    p.set_defaults(func=cmd_rebuild)
    p = cmds.add_parser("table", help="cost tables: energy (Table S1), training (Tables 2, 3), inference (Table 4)")
    p.add_argument("table", choices=list(TABLES))
    p.add_argument("--model")
    p.add_argument("--baseline", help="energy: the run the ratio is taken against (default the first)")
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    p.set_defaults(func=cmd_table)
