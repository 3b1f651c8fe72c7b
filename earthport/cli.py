"""The one entry point: ``earthport <command>``. Each handler parses, calls one workflow, prints results.

Errors earthport knows about (missing file or variable, wrong shape, ...) print as one line naming the
thing and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from earthport import __version__
from earthport.errors import EarthportError

QUIET = argparse.ArgumentParser(add_help=False)
QUIET.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _grid(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid {text!r} is not HxW, e.g. 32x64 or 721x1440") from None
    return height, width


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def cmd_generate(args: argparse.Namespace) -> None:
    from earthport.data.generate import generate

    generate(
        args.out,
        kind=args.kind,
        grid=args.grid,
        years=args.years,
        steps_per_year=args.steps_per_year,
        seed=args.seed,
        channels=args.channels,
        start_year=args.start_year,
        step_hours=args.time_step_hours,
        progress=not args.quiet,
    )
    print(f"wrote {args.kind} data to {args.out}")


def cmd_convert(args: argparse.Namespace) -> None:
    from earthport.data.layouts import convert

    convert(args.src, args.dst, args.to, channels=args.channels, progress=not args.quiet)
    print(f"wrote {args.dst} ({args.to})")


def _img_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"img size {text!r} is not H,W, e.g. 720,1440") from None
    return height, width


def cmd_convert_weights(args: argparse.Namespace) -> None:
    from earthport.migrate.convert import convert_file

    report = convert_file(args.src, args.dst, model=args.model, img_size=args.img_size, to=args.to)
    print(report.summary())
    print(f"wrote {args.dst}, {args.dst}.report.json and {args.dst}.report.md")


def cmd_stats(args: argparse.Namespace) -> None:
    from earthport.data.fcn import FcnDirectory
    from earthport.data.stats import compute_stats

    data = FcnDirectory(args.data)
    stats = compute_stats(data.series(args.split), chunk=args.chunk, progress=not args.quiet)
    stats.save(data.stats_dir)
    print(f"wrote {data.stats_dir}/global_means.npy, global_stds.npy, time_means.npy from the {args.split} split")


def cmd_regrid(args: argparse.Namespace) -> None:
    from earthport.data.layouts import open_series, write_series
    from earthport.data.regrid import RegriddedSeries, regular_grid

    lat, lon = regular_grid(args.resolution)
    series = RegriddedSeries(open_series(args.src, args.channels), lat, lon, min_fraction=args.min_fraction)
    write_series(series, args.dst, args.to, progress=not args.quiet)
    print(f"wrote {args.dst} on a {args.resolution} degree grid ({lat.size} x {lon.size})")


def cmd_info(args: argparse.Namespace) -> None:
    from earthport.data.info import describe

    print(describe(args.path))


def cmd_sample(args: argparse.Namespace) -> None:
    from earthport.data.sample_data import builtin_dataset

    print(builtin_dataset(args.name, args.out, progress=not args.quiet))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from earthport.workflows.evaluate import evaluate_baselines, show_scores, write_scores

    scores = evaluate_baselines(
        args.data,
        baselines=args.baseline or ["persistence", "climatology"],
        leads=args.leads,
        split=args.split,
        convention=args.convention,
        weighting=args.weighting,
        max_inits=args.max_inits,
        progress=not args.quiet,
    )
    show_scores(scores, args.data, all_channels=args.all_channels)
    if args.out:
        write_scores(scores, args.out)
        print(f"wrote {args.out}")


def cmd_train(args: argparse.Namespace) -> None:
    from dataclasses import fields

    from earthport.config import load_train_config
    from earthport.models import registry
    from earthport.workflows.train import train

    model_fields = [f.name for f in fields(registry.config_class(args.model or "fourcastnet"))]
    patience = args.epochs + 1 if args.epochs else None  # --epochs N: exactly N epochs, no early stop
    config = load_train_config(
        args.config, args.set, model_fields, model=args.model, preset=args.preset, lr=args.lr,
        batch_size=args.batch_size, max_epochs=args.epochs or args.max_epochs, patience=patience,
        time_limit=args.time_limit, device=args.device, precision=args.precision, seed=args.seed,
        framework=args.framework, ms_mode=args.ms_mode,
    )  # fmt: skip
    record = train(config, args.data, args.out, resume=args.resume, max_steps=args.max_steps, progress=not args.quiet)
    print(
        f"{record['stop_reason']} after {record['epochs']} epochs ({record['train_seconds']:.0f} s); "
        f"best validation loss {record['best_valid_loss']} at epoch {record['best_epoch']}; "
        f"record {args.out}/record.json"
    )


def _setting(text: str) -> tuple[str, object]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"setting {text!r} is not key=value, e.g. img_size=[720,1440]")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"setting {text!r}: the value is not YAML ({err})") from None


def cmd_infer(args: argparse.Namespace) -> None:
    import pandas as pd

    from earthport.metrics import side_by_side
    from earthport.report.console import print_frame
    from earthport.workflows.evaluate import headline_channels
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
    from earthport.workflows.export import export_mindir

    record = export_mindir(args.checkpoint, args.out, batch_size=args.batch_size, device=args.device)
    shape = "x".join(str(n) for n in record["input"]["shape"])
    print(f"wrote {args.out} (MindIR, input {shape} float32, {record['output']['bytes'] / 2**20:.1f} MiB)")


def _framework_arguments(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--framework", choices=["torch", "mindspore"], default=default, help="default torch")
    p.add_argument("--ms-mode", choices=["graph", "pynative"], default=None if default is None else "graph",
                   help="MindSpore: compile the step to a graph (default) or run op by op")  # fmt: skip


def cmd_demo(args: argparse.Namespace) -> None:
    from earthport.workflows.demo import run_demo

    run_demo(args.out, progress=not args.quiet)


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r} is not comma-separated integers, e.g. 1,20,32,64") from None
    return shape


def _json_object(text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--kwargs {text!r} is not JSON ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--kwargs {text!r} is not a JSON object")
    return value


def cmd_verify(args: argparse.Namespace) -> int:
    from earthport.workflows.verify import verify

    report = verify(
        args.out, model=args.model, preset=args.preset, data=args.data, checkpoint=args.checkpoint, steps=args.steps,
        train_steps=args.train_steps, batch_size=args.batch_size, inits=args.inits, lr=args.lr, seed=args.seed,
    )  # fmt: skip
    for name, target in report["targets"].items():
        mark = "ok  " if target["passed"] else "MISS"
        print(f"{mark} {name}: {target['measured']:.3e} (target <= {target['target']:.0e})")
    print(f"{'PASSED' if report['passed'] else 'FAILED'}: report {args.out}/verify.md, data {args.out}/verify.json")
    return 0 if report["passed"] else 1


def cmd_scan(args: argparse.Namespace) -> None:
    from earthport.migrate.scan import scan, write_report

    report = scan(args.model, args.kwargs, args.input_shape, backend=args.backend, probe=not args.no_probe,
                  core_aten=args.core_aten, progress=not args.quiet)  # fmt: skip
    md, js = write_report(report, args.out or Path("runs/scan") / report["model"])
    summary = report["summary"]
    counts = ", ".join(f"{n} {status}" for status, n in summary["by_status"].items())
    print(f"{report['model']}: {summary['distinct_ops']} distinct ops ({summary['calls']} calls): {counts}")
    print(summary["verdict"])
    print(f"wrote {md} and {js}")


def _data_parsers(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="generate, convert, inspect and prepare data sets").add_subparsers(
        dest="data_command", required=True
    )
    p = data.add_parser("generate", parents=[QUIET], help="generated data with learnable dynamics, FourCastNet layout")
    p.add_argument("--kind", choices=["atmosphere", "ocean"], default="atmosphere")
    p.add_argument("--grid", type=_grid, default=(32, 64), help="HxW, e.g. 32x64 or 721x1440 (default 32x64)")
    p.add_argument("--years", type=int, default=3, help="years; the last is test, the one before valid")
    p.add_argument("--steps-per-year", type=int, default=120, help="steps written per year from 1 January")
    p.add_argument("--time-step-hours", type=float, help="default 6 (atmosphere) or 24 (ocean)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start-year", type=int, default=2000)
    p.add_argument("--channels", type=_names, help="comma-separated channel names (default: the kind's set)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_generate)
    p = data.add_parser("convert", parents=[QUIET], help="convert between layouts (fcn, wb2 zarr/netCDF, hycom, cmems)")
    p.add_argument("src", help="directory, .zarr, .nc, or a built-in name (ostia)")
    p.add_argument("dst", type=Path)
    p.add_argument("--to", choices=["fcn", "wb2", "hycom", "cmems"], required=True)
    p.add_argument("--channels", type=_names, help="comma-separated channels to keep, e.g. z500,t850,u10")
    p.set_defaults(func=cmd_convert)
    p = data.add_parser("stats", parents=[QUIET], help="recompute means, stds and climatology in one streaming pass")
    p.add_argument("data", type=Path)
    p.add_argument("--split", default="train", choices=["train", "valid", "test"])
    p.add_argument("--chunk", type=int, default=8, help="time steps per read")
    p.set_defaults(func=cmd_stats)
    p = data.add_parser("regrid", parents=[QUIET], help="NaN-aware conservative regridding to a regular grid")
    p.add_argument("src")
    p.add_argument("dst", type=Path)
    p.add_argument("--resolution", type=float, default=0.25, help="target spacing in degrees (default 0.25)")
    p.add_argument("--min-fraction", type=float, default=0.5, help="least valid area for a valid target cell")
    p.add_argument("--to", choices=["fcn", "wb2", "hycom", "cmems"], default="fcn")
    p.add_argument("--channels", type=_names)
    p.set_defaults(func=cmd_regrid)
    p = data.add_parser("info", parents=[QUIET], help="layout, channels, grid, times and masks of a data set")
    p.add_argument("path")
    p.set_defaults(func=cmd_info)
    p = data.add_parser(
        "sample", parents=[QUIET], help="write a built-in real data set (OSTIA SST) in the FourCastNet layout"
    )
    p.add_argument("name", choices=["ostia"])
    p.add_argument("--out", type=Path, help="default: $EARTHPORT_DATA/NAME (~/.cache/earthport/NAME)")
    p.set_defaults(func=cmd_sample)


def _infer_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", parents=[QUIET], help="forecast from a checkpoint, write the fields, score and time it")
    p.add_argument("--checkpoint", type=Path, required=True, help="earthport, NVlabs or MindSpore checkpoint")
    p.add_argument("--data", required=True, help="FourCastNet-layout directory or a built-in name (ostia)")
    p.add_argument("--steps", type=int, required=True, help="model steps to roll out")
    p.add_argument("--out", type=Path, required=True, help="forecast file: .nc (netCDF) or .zarr")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "npu"], help="cuda also means ROCm")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--max-inits", type=int, default=8, help="at most this many initial times (default 8)")
    p.add_argument("--init-stride", type=int, help="every S-th valid initial time (default: spread evenly)")
    p.add_argument("--set", type=_setting, action="append", metavar="KEY=VALUE", help="config override, YAML value")
    p.add_argument("--batch-size", type=int, default=1, help="initial times rolled out together")
    p.add_argument("--format", choices=["netcdf", "zarr"], help="default from the --out suffix")
    p.add_argument("--convention", default="wb2", choices=["wb2", "fcn"], help="RMSE: sqrt of mean, or mean of sqrt")
    p.add_argument("--latency-repeats", type=int, default=20, help="timed single steps (default 20; 0: none)")
    _framework_arguments(p, "torch")
    p.set_defaults(func=cmd_infer)
    p = sub.add_parser("export", parents=[QUIET], help="export a checkpoint as MindIR (MindSpore) for deployment")
    p.add_argument("--checkpoint", type=Path, required=True, help="MindSpore .ckpt/.safetensors or earthport .pt")
    p.add_argument("--out", type=Path, required=True, help="the .mindir file to write")
    p.add_argument("--batch-size", type=int, default=1, help="batch size fixed in the graph (default 1)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "npu"])
    p.set_defaults(func=cmd_export)


def _scan_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", parents=[QUIET], help="prove PyTorch/MindSpore parity: outputs, gradients, losses, skill"
    )
    p.add_argument("--model", default="fourcastnet")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", help="FourCastNet-layout data (default: generated on the preset's grid under OUT/data)")
    p.add_argument("--checkpoint", help="verify these trained weights (earthport or NVlabs checkpoint)")
    p.add_argument("--steps", type=int, default=10, help="rollout steps (default 10)")
    p.add_argument("--train-steps", type=int, default=20, help="training steps for the loss curves (default 20)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--inits", type=int, default=4, help="initial times of the rollout (default 4)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("scan", parents=[QUIET], help="ops, MindSpore counterparts, probes and default differences")
    p.add_argument("model", help="PACKAGE.MODULE:CLASS (or a factory returning a torch.nn.Module)")
    p.add_argument("--kwargs", type=_json_object, default={}, help="arguments as a JSON object")
    p.add_argument("--input-shape", type=_shape, required=True, help="example input, e.g. 1,20,32,64")
    p.add_argument("--backend", default="CPU", choices=["CPU", "GPU", "Ascend"], help="MindSpore backend to probe")
    p.add_argument("--out", type=Path, help="report directory (default runs/scan/<ClassName>)")
    p.add_argument("--no-probe", action="store_true", help="skip the MindSpore probes")
    p.add_argument("--core-aten", action="store_true", help="map core ATen ops (run_decompositions) instead")
    p.set_defaults(func=cmd_scan)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earthport", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"earthport {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _data_parsers(sub)
    p = sub.add_parser("evaluate", parents=[QUIET], help="score baseline forecasts per channel and lead (RMSE, ACC)")
    p.add_argument("--data", required=True, help="FourCastNet-layout directory or a built-in name (ostia)")
    p.add_argument("--baseline", action="append", choices=["persistence", "climatology"], help="repeatable")
    p.add_argument("--leads", type=int, default=4, help="lead times in steps (default 4)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--convention", default="wb2", choices=["wb2", "fcn"], help="RMSE: sqrt of mean, or mean of sqrt")
    p.add_argument("--weighting", default="cos", choices=["cos", "area"], help="latitude weights")
    p.add_argument("--max-inits", type=int, help="at most this many initial times, evenly spread")
    p.add_argument("--all-channels", action="store_true", help="show every channel, not only the headline ones")
    p.add_argument("--out", type=Path, help="write all scores to .csv, .json or .md")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("train", parents=[QUIET], help="train a model to convergence (resumable)")
    p.add_argument("--model", help="model name (default fourcastnet)")
    p.add_argument("--preset", help="size preset: tiny, small or paper (default tiny)")
    p.add_argument("--data", required=True, help="FourCastNet-layout directory or a built-in name (ostia)")
    p.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, config, record)")
    p.add_argument("--config", type=Path, help="YAML with sections model, data, optimizer, train")
    p.add_argument("--set", action="append", default=[], help="key=value override, e.g. train.lr=1e-3; repeatable")
    p.add_argument("--epochs", type=int, help="train exactly this many epochs (no early stopping)")
    p.add_argument("--max-epochs", type=int, help="cap on epochs; stops earlier on convergence")
    p.add_argument("--time-limit", type=float, help="seconds of training before stopping")
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "npu"])
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest last.*")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps in total (resumable)")
    _framework_arguments(p, None)
    p.set_defaults(func=cmd_train)
    _infer_parser(sub)
    p = sub.add_parser("convert", parents=[QUIET], help="convert weights PyTorch <-> MindSpore, with a mapping report")
    p.add_argument("src", type=Path, help="torch .pt/.pth/.tar/.ckpt, safetensors, or MindSpore .ckpt")
    p.add_argument("dst", type=Path, help=".ckpt/.safetensors (MindSpore unless --to torch) or .pt/.pth (torch)")
    p.add_argument("--model", help="model name (default: as recorded in SRC, else fourcastnet)")
    p.add_argument("--img-size", type=_img_size, help="H,W of a checkpoint without config (default: a 1:2 grid)")
    p.add_argument("--to", choices=["torch", "mindspore"], help="target framework (default from DST's extension)")
    p.set_defaults(func=cmd_convert_weights)
    p = sub.add_parser(
        "demo", parents=[QUIET], help="the main job on built-in data: generate, evaluate, print the skill tables"
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.set_defaults(func=cmd_demo)
    _scan_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int | None] = args.func
    try:
        status = handler(args)
    except EarthportError as err:
        print(f"earthport: error: {err}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
