"""``earthport data ...`` and ``earthport evaluate``: data sets and baseline skill."""

from __future__ import annotations

import argparse
from pathlib import Path

from earthport import files
from earthport.cli.common import OVERWRITE, QUIET, fraction, grid, names, positive_float, positive_int
from earthport.data.channels import CHANNEL_SETS


def cmd_generate(args: argparse.Namespace) -> None:
    from earthport.data.generate import generate

    settings = {"kind": args.kind, "grid": args.grid, "years": args.years, "steps_per_year": args.steps_per_year,
                "seed": args.seed, "channels": args.channels, "start_year": args.start_year,
                "step_hours": args.time_step_hours, "channel_set": args.channel_set}  # fmt: skip
    files.write_whole(args.out, args.overwrite, lambda out: generate(out, progress=not args.quiet, **settings))
    print(f"wrote {args.kind} data to {args.out}")


def cmd_convert(args: argparse.Namespace) -> None:
    from earthport.data.layouts import convert

    files.write_whole(
        args.dst,
        args.overwrite,
        lambda dst: convert(args.src, dst, args.to, args.channels, progress=not args.quiet),
        folder=args.dst.suffix != ".nc",
    )
    print(f"wrote {args.dst} ({args.to})")


def cmd_stats(args: argparse.Namespace) -> None:
    from earthport.data.fcn import FcnDirectory
    from earthport.data.stats import compute_stats

    data = FcnDirectory(args.data)
    stats = compute_stats(data.series(args.split), chunk=args.chunk, progress=not args.quiet)
    data.save_stats(stats)  # in the files' latitude order
    diffs = ", global_diff_stds.npy" if stats.diff_stds is not None else " (no diff stds: no steps one step apart)"
    names = f"global_means.npy, global_stds.npy, time_means.npy{diffs}"
    print(f"wrote {data.stats_dir}/{names} from the {args.split} split")


def cmd_regrid(args: argparse.Namespace) -> None:
    from earthport.data.layouts import open_series, write_series
    from earthport.data.regrid import RegriddedSeries, regular_grid

    lat, lon = regular_grid(args.resolution)
    series = RegriddedSeries(open_series(args.src, args.channels), lat, lon, min_fraction=args.min_fraction)
    files.write_whole(args.dst, args.overwrite, lambda dst: write_series(series, dst, args.to, progress=not args.quiet),
                      folder=args.dst.suffix != ".nc")  # fmt: skip
    print(f"wrote {args.dst} on a {args.resolution} degree grid ({lat.size} x {lon.size})")


def cmd_ocean_prep(args: argparse.Namespace) -> None:
    from earthport.data.channels import depth_channels
    from earthport.data.ocean_prep import AIGOMS_DEPTHS, AIGOMS_FORCINGS, prepare_ocean

    channels = args.channels or depth_channels(args.depths or AIGOMS_DEPTHS)
    static = dict(args.static or [])
    settings = {"forcing": args.forcing, "forcing_channels": args.forcing_channels or AIGOMS_FORCINGS,
                "static": static, "resolution": args.resolution, "min_fraction": args.min_fraction,
                "progress": not args.quiet}  # fmt: skip
    written = []
    files.write_whole(args.out, args.overwrite,
                      lambda out: written.append(prepare_ocean(out, args.ocean, channels, **settings)))  # fmt: skip
    meta = written[0]
    ocean, forcing = len(meta.with_role("prognostic")), len(meta.with_role("forcing"))
    print(f"wrote {args.out}: {ocean} ocean and {forcing} forcing channels, {len(static)} static field(s), "
          f"on {meta.lat.size} x {meta.lon.size}")


def _depths(text: str) -> list[float]:
    """Comma-separated depths in metres, e.g. 0,6,10."""
    try:
        depths = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"depths {text!r} are not comma-separated metres, e.g. 0,6,10") from None
    if not depths or min(depths) < 0:
        raise argparse.ArgumentTypeError(f"depths {text!r} must be metres >= 0, e.g. 0,6,10")
    return depths


def _static(text: str) -> tuple[str, tuple[str, str]]:
    """NAME=PATH[:CHANNEL] -> (NAME, (PATH, CHANNEL)); CHANNEL defaults to NAME."""
    name, sep, rest = text.partition("=")
    path, colon, channel = rest.rpartition(":")
    if not colon:
        path, channel = rest, name
    if not sep or not name.strip() or not path or not channel:
        raise argparse.ArgumentTypeError(f"static field {text!r} is not NAME=PATH[:CHANNEL], e.g. "
                                         "orography=era5.zarr:orog")  # fmt: skip
    return name.strip(), (path, channel)


def cmd_info(args: argparse.Namespace) -> None:
    from earthport.data.info import describe

    print(describe(args.path))


def cmd_sample(args: argparse.Namespace) -> None:
    from earthport.data.sample_data import builtin_dataset

    print(builtin_dataset(args.name, args.out, progress=not args.quiet))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from earthport.workflows.evaluate import check_scores_path, evaluate_baselines, show_scores, write_scores

    if args.out:
        check_scores_path(args.out, args.overwrite)
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


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="generate, convert, inspect and prepare data sets").add_subparsers(
        dest="data_command", required=True
    )
    _register_making(data)
    _register_reading(data)
    _register_evaluate(sub)


def _register_making(data: argparse._SubParsersAction) -> None:
    """``data generate | convert | regrid``: commands that write a data set."""
    p = data.add_parser(
        "generate", parents=[QUIET, OVERWRITE], help="generated data with learnable dynamics, FourCastNet layout"
    )
    p.add_argument("--kind", choices=["atmosphere", "ocean"], default="atmosphere")
    p.add_argument("--grid", type=grid, default=(32, 64), help="HxW, e.g. 32x64 or 721x1440 (default 32x64)")
    p.add_argument("--years", type=positive_int, default=3, help="years; the last is test, the one before valid")
    p.add_argument("--steps-per-year", type=positive_int, default=120, help="steps written per year from 1 January")
    p.add_argument("--time-step-hours", type=positive_float, help="default 6 (atmosphere) or 24 (ocean)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start-year", type=int, default=2000)
    p.add_argument("--channels", type=names, help="comma-separated channel names (default: the kind's set)")
    p.add_argument("--channel-set", default="default", choices=CHANNEL_SETS["ocean"],
                   help="ocean: default (4 x 5 depths, zos, 4 forcings) or aigoms (4 x 15 depths, zos, 5 forcings)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_generate)
    p = data.add_parser(
        "convert", parents=[QUIET, OVERWRITE], help="convert between layouts (fcn, wb2 zarr/netCDF, hycom, cmems)"
    )
    p.add_argument("src", help="directory, .zarr, .nc, or a built-in name (ostia)")
    p.add_argument("dst", type=Path)
    p.add_argument("--to", choices=["fcn", "wb2", "hycom", "cmems"], required=True)
    p.add_argument("--channels", type=names, help="comma-separated channels to keep, e.g. z500,t850,u10")
    p.set_defaults(func=cmd_convert)
    p = data.add_parser(
        "regrid", parents=[QUIET, OVERWRITE], help="NaN-aware conservative regridding to a regular grid"
    )
    p.add_argument("src")
    p.add_argument("dst", type=Path)
    p.add_argument("--resolution", type=positive_float, default=0.25, help="target spacing in degrees (default 0.25)")
    p.add_argument("--min-fraction", type=fraction, default=0.5, help="least valid area for a valid target cell")
    p.add_argument("--to", choices=["fcn", "wb2", "hycom", "cmems"], default="fcn")
    p.add_argument("--channels", type=names)
    p.set_defaults(func=cmd_regrid)
    _register_ocean_prep(data)


def _register_ocean_prep(data: argparse._SubParsersAction) -> None:
    p = data.add_parser(
        "ocean-prep",
        parents=[QUIET, OVERWRITE],
        help="ocean netCDF + forcings + static fields -> one training directory on a regular grid (AI-GOMS)",
    )
    p.add_argument("ocean", nargs="+", help="HYCOM or CMEMS netCDF files (split by time, or by variable)")
    p.add_argument("--out", type=Path, required=True, help="the FourCastNet-layout directory to write")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--depths", type=_depths, help="metres, for thetao, so, uo, vo (default AI-GOMS's 15, 0..500)")
    which.add_argument("--channels", type=names, help="ocean channels by name instead of --depths, e.g. thetao_0m,zos")
    p.add_argument("--forcing", help="atmospheric forcings: WB2 zarr/netCDF or FourCastNet directory (e.g. ERA5)")
    p.add_argument("--forcing-channels", type=names, help="default u10,v10,t2m,msl,sp")
    p.add_argument("--static", type=_static, action="append",
                   help="NAME=PATH[:CHANNEL]: a static field, e.g. orography=era5.zarr:orog; repeatable")  # fmt: skip
    p.add_argument("--resolution", type=positive_float, default=0.25, help="target spacing in degrees (default 0.25)")
    p.add_argument("--min-fraction", type=fraction, default=0.5, help="least ocean area for an ocean target cell")
    p.set_defaults(func=cmd_ocean_prep)


def _register_reading(data: argparse._SubParsersAction) -> None:
    """``data stats | info | sample``."""
    p = data.add_parser(
        "stats", parents=[QUIET], help="recompute means, stds, climatology and one step's change std in one pass"
    )
    p.add_argument("data", type=Path)
    p.add_argument("--split", default="train", choices=["train", "valid", "test"])
    p.add_argument("--chunk", type=positive_int, default=8, help="time steps per read")
    p.set_defaults(func=cmd_stats)
    p = data.add_parser("info", parents=[QUIET], help="layout, channels, grid, times and masks of a data set")
    p.add_argument("path")
    p.set_defaults(func=cmd_info)
    p = data.add_parser(
        "sample", parents=[QUIET], help="write a built-in real data set (OSTIA SST) in the FourCastNet layout"
    )
    p.add_argument("name", choices=["ostia"])
    p.add_argument("--out", type=Path, help="default: $EARTHPORT_DATA/NAME (~/.cache/earthport/NAME)")
    p.set_defaults(func=cmd_sample)


def _register_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", parents=[QUIET, OVERWRITE], help="score baseline forecasts per channel and lead (RMSE, ACC)"
    )
    p.add_argument("--data", required=True, help="FourCastNet-layout directory or a built-in name (ostia)")
    p.add_argument("--baseline", action="append", choices=["persistence", "climatology"], help="repeatable")
    p.add_argument("--leads", type=positive_int, default=4, help="lead times in steps (default 4)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--convention", default="wb2", choices=["wb2", "fcn"], help="RMSE: sqrt of mean, or mean of sqrt")
    p.add_argument("--weighting", default="cos", choices=["cos", "area"], help="latitude weights")
    p.add_argument("--max-inits", type=positive_int, help="at most this many initial times, evenly spread")
    p.add_argument("--all-channels", action="store_true", help="show every channel, not only the headline ones")
    p.add_argument("--out", type=Path, help="write all scores to .csv, .json or .md")
    p.set_defaults(func=cmd_evaluate)
