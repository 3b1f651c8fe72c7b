"""``earthport train | infer | export``: models in either framework."""

from __future__ import annotations

import argparse
from pathlib import Path

from earthport.cli.common import OVERWRITE, QUIET, count, framework_arguments, positive_float, positive_int, setting
from earthport.config import DEVICES
from earthport.models.registry import DEFAULT as DEFAULT_MODEL


def cmd_train(args: argparse.Namespace) -> None:
    from dataclasses import fields

    from earthport import ranks
    from earthport.config import load_train_config
    from earthport.models import registry
    from earthport.workflows.train import train

    world = ranks.current()
    if world.scheduler:  # msrun's rendezvous process runs the same command line: it serves, and trains nothing
        from earthport.backends.base import backend

        backend("mindspore").serve_scheduler()
        return
    model_fields = [f.name for f in fields(registry.spec(args.model or registry.DEFAULT).config)]
    patience = None if args.epochs is None else args.epochs + 1  # --epochs N: exactly N epochs, no early stop
    max_epochs = args.max_epochs if args.epochs is None else args.epochs
    config = load_train_config(
        args.config, args.set, model_fields, model=args.model, preset=args.preset, lr=args.lr,
        batch_size=args.batch_size, max_epochs=max_epochs, patience=patience,
        time_limit=args.time_limit, device=args.device, precision=args.precision, seed=args.seed,
        framework=args.framework, ms_mode=args.ms_mode, freeze_backbone=args.freeze_backbone or None,
    )  # fmt: skip
    if args.nproc is not None:
        from earthport.workflows.launch import train_in_processes

        arguments = without_option(args.argv, "--nproc")
        record = train_in_processes(config, args.nproc, arguments, args.out, args.resume, args.overwrite)
    else:
        record = train(config, args.data, args.out, resume=args.resume, max_steps=args.max_steps,
                       progress=not args.quiet, overwrite=args.overwrite, init_from=args.init_from)  # fmt: skip
    if world.main and not ranks.reports_to_launcher():  # earthport's own launcher prints it once
        processes = f" in {record['processes']} processes" if record.get("processes", 1) > 1 else ""
        print(
            f"{record['stop_reason']} after {record['epochs']} epochs ({record['train_seconds']:.0f} s{processes}); "
            f"best validation loss {record['best_valid_loss']} at epoch {record['best_epoch']}; "
            f"record {args.out}/record.json"
        )


def without_option(argv: list[str], option: str) -> list[str]:
    """``argv`` less ``option`` and its value, as ``--option V``, ``--option=V`` or an abbreviation argparse took."""
    kept, skip = [], False
    for token in argv:
        name = token.split("=", 1)[0]
        if skip:
            skip = False
        elif len(name) > 2 and option.startswith(name):
            skip = "=" not in token
        else:
            kept.append(token)
    return kept


def cmd_infer(args: argparse.Namespace) -> None:
    import pandas as pd

    from earthport.metrics import headline_channels, side_by_side
    from earthport.report.console import print_frame
    from earthport.workflows.infer import infer, sibling

    record = infer(
        args.checkpoint,
        args.data,
        steps=args.steps,
        out=args.out,
        device=args.device,
        precision=args.precision,
        split=args.split,
        max_inits=args.max_inits,
        init_stride=args.init_stride,
        overrides=dict(args.set or []),
        batch_size=args.batch_size,
        fmt=args.format,
        convention=args.convention,
        latency_repeats=args.latency_repeats,
        progress=not args.quiet,
        framework=args.framework,
        ms_mode=args.ms_mode,
        overwrite=args.overwrite,
    )
    scores = pd.DataFrame(record["scores"])
    channels = headline_channels(record["data"]["kind"], record["channels"]["output"]) or None
    print_frame(side_by_side(scores, channels), title=f"{record['model']} on {record['data']['path']} ({args.split})")
    latency = record["latency_s"]
    if isinstance(latency, dict):
        print(f"one step: median {latency['median'] * 1e3:.3g} ms (IQR {latency['iqr'] * 1e3:.2g} ms, "
              f"{latency['count']} runs) on {record['device']['description']}, {record['precision']}")  # fmt: skip
    print(f"wrote {args.out}, {sibling(args.out, 'scores.csv')} and {sibling(args.out, 'record.json')}")


def cmd_export(args: argparse.Namespace) -> None:
    from earthport.backends.mindspore.export import export_mindir

    record = export_mindir(args.checkpoint, args.out, batch_size=args.batch_size, device=args.device,
                           overwrite=args.overwrite)  # fmt: skip
    shape = "x".join(str(n) for n in record["input"]["shape"])
    print(f"wrote {args.out} (MindIR, input {shape} float32, {record['output']['bytes'] / 2**20:.1f} MiB)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", parents=[QUIET, OVERWRITE],
                       help="forecast from a checkpoint, write the fields, score and time it")  # fmt: skip
    p.add_argument("--checkpoint", type=Path, required=True, help="earthport, NVlabs or MindSpore checkpoint")
    p.add_argument("--data", required=True, help="FourCastNet-layout directory or a built-in name (ostia)")
    p.add_argument("--steps", type=positive_int, required=True, help="model steps to roll out")
    p.add_argument("--out", type=Path, required=True, help="forecast file: .nc (netCDF) or .zarr")
    p.add_argument("--device", default="auto", choices=DEVICES, help="cuda also means ROCm")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--max-inits", type=positive_int, default=8, help="at most this many initial times (default 8)")
    p.add_argument("--init-stride", type=positive_int, help="every S-th valid initial time (default: spread evenly)")
    p.add_argument("--set", type=setting, action="append", metavar="KEY=VALUE", help="config override, YAML value")
    p.add_argument("--batch-size", type=positive_int, default=1, help="initial times rolled out together")
    p.add_argument("--format", choices=["netcdf", "zarr"], help="default from the --out suffix")
    p.add_argument("--convention", default="wb2", choices=["wb2", "fcn"], help="RMSE: sqrt of mean, or mean of sqrt")
    p.add_argument("--latency-repeats", type=count, default=20, help="timed single steps (default 20; 0: none)")
    framework_arguments(p, "torch")
    p.set_defaults(func=cmd_infer)
    p = sub.add_parser("export", parents=[QUIET, OVERWRITE], help="export a checkpoint as MindIR for deployment")
    p.add_argument("--checkpoint", type=Path, required=True, help="MindSpore .ckpt/.safetensors or earthport .pt")
    p.add_argument("--out", type=Path, required=True, help="the .mindir file to write")
    p.add_argument("--batch-size", type=positive_int, default=1, help="batch size fixed in the graph (default 1)")
    p.add_argument("--device", default="cpu", choices=DEVICES)
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("train", parents=[QUIET, OVERWRITE], help="train a model to convergence (resumable)")
    p.add_argument("--model", help=f"model name (default {DEFAULT_MODEL})")
    p.add_argument("--preset", help="size preset: tiny, small or paper (default tiny)")
    p.add_argument("--data", required=True, help="FourCastNet-layout directory or a built-in name (ostia)")
    p.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, config, record)")
    p.add_argument("--config", type=Path, help="YAML with sections model, data, optimizer, train")
    p.add_argument("--set", action="append", default=[], help="key=value override, e.g. train.lr=1e-3; repeatable")
    p.add_argument("--epochs", type=positive_int, help="train exactly this many epochs (no early stopping)")
    p.add_argument("--max-epochs", type=positive_int, help="cap on epochs; stops earlier on convergence")
    p.add_argument("--time-limit", type=positive_float, help="seconds of training before stopping")
    p.add_argument("--lr", type=positive_float)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--device", choices=DEVICES)
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue the run in --out (its last.* of most steps)")
    p.add_argument("--freeze-backbone", action="store_true",
                   help="train only the model's head on the frozen backbone (with --init-from: a downstream head)")
    p.add_argument("--init-from", type=Path, metavar="CKPT",
                   help="start a new run from CKPT's weights (fine-tuning; optimizer and schedule start afresh)")
    p.add_argument("--max-steps", type=positive_int, help="stop after this many optimizer steps in total (resumable)")
    p.add_argument("--nproc", type=positive_int, metavar="N",
                   help="data-parallel training in N processes on this machine, under torchrun's engine (torch) or "
                        "msrun (MindSpore); the global batch is N x --batch-size (docs/training.md)")
    framework_arguments(p, None)
    p.set_defaults(func=cmd_train)
