"""``earthport convert | verify | scan``: moving a model to MindSpore and proving it."""

from __future__ import annotations

import argparse
from pathlib import Path

from earthport.cli.common import OVERWRITE, QUIET, grid_size, json_object, positive_float, positive_int, shape
from earthport.models.registry import DEFAULT as DEFAULT_MODEL


def cmd_convert_weights(args: argparse.Namespace) -> None:
    from earthport.migrate.convert import convert_file

    report = convert_file(args.src, args.dst, model=args.model, grid=args.grid, to=args.to,
                          overwrite=args.overwrite)  # fmt: skip
    print(report.summary())
    print(f"wrote {args.dst}, {args.dst}.report.json and {args.dst}.report.md")


def cmd_verify(args: argparse.Namespace) -> int:
    from earthport.workflows.verify import verify

    report = verify(
        args.out, model=args.model, preset=args.preset, data=args.data, checkpoint=args.checkpoint, steps=args.steps,
        train_steps=args.train_steps, batch_size=args.batch_size, inits=args.inits, lr=args.lr, seed=args.seed,
        overwrite=args.overwrite,
    )  # fmt: skip
    for name, target in report["targets"].items():
        mark = "ok  " if target["passed"] else "MISS"
        print(f"{mark} {name}: {target['measured']:.3e} (target <= {target['target']:.0e})")
    print(f"{'PASSED' if report['passed'] else 'FAILED'}: report {args.out}/verify.md, data {args.out}/verify.json")
    return 0 if report["passed"] else 1


def cmd_scan(args: argparse.Namespace) -> None:
    from earthport import files
    from earthport.migrate.scan import scan, write_report

    if args.out:
        files.check_output(args.out, args.overwrite, folder=True)  # before the work, not after
    report = scan(args.model, args.kwargs, args.input_shape, backend=args.backend, probe=not args.no_probe,
                  core_aten=args.core_aten, progress=not args.quiet)  # fmt: skip
    out = args.out or Path("runs/scan") / report["model"]
    files.replace(out, args.overwrite, folder=True)
    md, js = write_report(report, out)
    summary = report["summary"]
    counts = ", ".join(f"{n} {status}" for status, n in summary["by_status"].items())
    print(f"{report['model']}: {summary['distinct_ops']} distinct ops ({summary['calls']} calls): {counts}")
    print(summary["verdict"])
    print(f"wrote {md} and {js}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", parents=[QUIET, OVERWRITE], help="prove PyTorch/MindSpore parity: outputs, gradients, losses, skill"
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", help="FourCastNet-layout data (default: generated on the preset's grid under OUT/data)")
    p.add_argument("--checkpoint", help="verify these trained weights (earthport or NVlabs checkpoint)")
    p.add_argument("--steps", type=positive_int, default=10, help="rollout steps (default 10)")
    p.add_argument("--train-steps", type=positive_int, default=20, help="training steps for the loss curves")
    p.add_argument("--batch-size", type=positive_int, default=2)
    p.add_argument("--inits", type=positive_int, default=4, help="initial times of the rollout (default 4)")
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser(
        "scan", parents=[QUIET, OVERWRITE], help="ops, MindSpore counterparts, probes and default differences"
    )
    p.add_argument("model", help="PACKAGE.MODULE:CLASS (or a factory returning a torch.nn.Module)")
    p.add_argument("--kwargs", type=json_object, default={}, help="arguments as a JSON object")
    p.add_argument("--input-shape", type=shape, required=True, help="example input, e.g. 1,20,32,64")
    p.add_argument("--backend", default="CPU", choices=["CPU", "GPU", "Ascend"], help="MindSpore backend to probe")
    p.add_argument("--out", type=Path, help="report directory (default runs/scan/<ClassName>)")
    p.add_argument("--no-probe", action="store_true", help="skip the MindSpore probes")
    p.add_argument("--core-aten", action="store_true", help="map core ATen ops (run_decompositions) instead")
    p.set_defaults(func=cmd_scan)
    p = sub.add_parser(
        "convert", parents=[QUIET, OVERWRITE],
        help="convert weights PyTorch <-> MindSpore (or DeepMind's GraphCast .npz into either), with a mapping report",
    )
    p.add_argument("src", type=Path,
                   help="torch .pt/.pth/.tar/.ckpt, safetensors, MindSpore .ckpt, or DeepMind's GraphCast .npz")
    p.add_argument("dst", type=Path, help=".ckpt/.safetensors (MindSpore unless --to torch) or .pt/.pth (torch)")
    p.add_argument("--model", help="model name (default: as SRC records, else the model whose original format SRC is)")
    p.add_argument("--grid", "--img-size", dest="grid", type=grid_size,
                   help="H,W: the grid of a checkpoint without config (default: what its model assumes)")
    p.add_argument("--to", choices=["torch", "mindspore"], help="target framework (default from DST's extension)")
    p.set_defaults(func=cmd_convert_weights)
