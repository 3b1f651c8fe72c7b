"""The parity report: ``verify.md`` with tables and PNG plots (matplotlib, no display needed)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from earthport import files  # noqa: E402
from earthport.config import FRAMEWORKS  # noqa: E402
from earthport.metrics.parity import zonal_power_spectrum  # noqa: E402


def write_report(out: Path, report: dict, arrays: dict, headline: list[str]) -> None:
    """Plots and ``verify.md`` under ``out`` from the verify report and the rollout arrays."""
    figures = {
        "layers.png": _layers(report["layers"]["layers"]),
        "gradients.png": _gradients(report["gradients"]["parameters"]),
        "loss_curves.png": _loss_curves(report["training"]),
        "rollout_rmse.png": _rollout_rmse(report["rollout"], headline),
        "difference_maps.png": _difference_maps(arrays, headline),
        "spectra.png": _spectra(arrays, headline),
    }
    for name, figure in figures.items():
        files.atomic_write(out / name, partial(figure.savefig, dpi=110, bbox_inches="tight"))
        plt.close(figure)
    files.write_text(out / "verify.md", _markdown(report, headline, list(figures)))


def _layers(layers: dict) -> plt.Figure:
    figure, ax = plt.subplots(figsize=(9, 3.5))
    names = list(layers)
    ax.semilogy(range(len(names)), [max(layers[n]["max_rel_error"], 1e-12) for n in names], "o-")
    ax.set_xticks(range(len(names)), names, rotation=70, fontsize=7)
    ax.set_ylabel("max |Δ| / max |torch|")
    ax.set_title("activation error layer by layer (MindSpore vs PyTorch)")
    return figure


def _gradients(parameters: dict) -> plt.Figure:
    figure, ax = plt.subplots(figsize=(9, 3.5))
    names = sorted(parameters, key=lambda n: parameters[n]["max_rel_error"])
    ax.semilogy([max(parameters[n]["max_rel_error"], 1e-12) for n in names], ".")
    ax.set_xlabel(f"{len(names)} parameters, sorted")
    ax.set_ylabel("max |Δgrad| / max |grad torch|")
    ax.set_title("gradient error per parameter after one backward pass")
    return figure


def _loss_curves(training: dict) -> plt.Figure:
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for framework, style in zip(FRAMEWORKS, ("-", "--"), strict=True):
        top.plot(training[framework], style, label=framework)
    top.set_ylabel(f"{training['loss']} loss")
    top.legend()
    difference = np.abs(np.subtract(training["mindspore"], training["torch"])) / np.abs(training["torch"])
    bottom.semilogy(np.maximum(difference, 1e-12))
    bottom.set_ylabel("relative difference")
    bottom.set_xlabel("training step (same batches, AdamW)")
    return figure


def _rollout_rmse(rollout: dict, headline: list[str]) -> plt.Figure:
    figure, axes = plt.subplots(1, len(headline), figsize=(4 * len(headline), 3.2), squeeze=False)
    for ax, channel in zip(axes[0], headline, strict=True):
        for framework, style in zip(FRAMEWORKS, ("-", "--"), strict=True):
            rows = [r for r in rollout["scores"][framework] if r["channel"] == channel]
            ax.plot([r["lead_hours"] for r in rows], [r["rmse"] for r in rows], style, label=framework)
        ax.set_title(f"{channel} RMSE ({rows[0].get('units', '')})")
        ax.set_xlabel("lead (h)")
    axes[0][0].legend()
    return figure


def _difference_maps(arrays: dict, headline: list[str]) -> plt.Figure:
    """First initial time, last lead: torch, MindSpore and their difference per headline channel."""
    size = (12, 2.8 * len(headline))
    figure, axes = plt.subplots(len(headline), 3, figsize=size, squeeze=False, layout="constrained")
    for row, channel in zip(axes, headline, strict=True):
        c = arrays["names"].index(channel)
        a, b = arrays["torch"][0, -1, c], arrays["mindspore"][0, -1, c]
        panels = ((a, "PyTorch", "viridis"), (b, "MindSpore", "viridis"), (b - a, "MindSpore − PyTorch", "RdBu_r"))
        for ax, (field, title, cmap) in zip(row, panels, strict=True):
            limit = float(np.abs(field).max()) or 1.0
            symmetric = {"vmin": -limit, "vmax": limit} if cmap == "RdBu_r" else {}
            image = ax.imshow(field, aspect="auto", cmap=cmap, **symmetric)
            ax.set_title(f"{channel} {title}, +{arrays['hours'][-1]:g} h", fontsize=8)
            figure.colorbar(image, ax=ax)
    return figure


def _spectra(arrays: dict, headline: list[str]) -> plt.Figure:
    figure, axes = plt.subplots(1, len(headline), figsize=(4 * len(headline), 3.2), squeeze=False)
    for ax, channel in zip(axes[0], headline, strict=True):
        c = arrays["names"].index(channel)
        for name, style in (("truth", ":"), ("torch", "-"), ("mindspore", "--")):
            power = zonal_power_spectrum(arrays[name][:, -1, c])
            ax.loglog(np.arange(1, power.size), power[1:], style, label=name)
        ax.set_title(f"{channel} zonal power, +{arrays['hours'][-1]:g} h")
        ax.set_xlabel("zonal wavenumber")
    axes[0][0].legend()
    return figure


def _markdown(report: dict, headline: list[str], figures: list[str]) -> str:
    lines = [f"# Parity: {report['model']} ({report['preset']}), PyTorch vs MindSpore", ""]
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines += [f"**{verdict}**: every target met." if report["passed"] else f"**{verdict}**: a target was missed.", ""]
    lines += ["| measure | target | measured | passed |", "|---|---|---|---|"]
    for name, target in report["targets"].items():
        lines.append(f"| {name} | ≤ {target['target']:.0e} | {target['measured']:.3e} | {target['passed']} |")
    lines += ["", f"Weights: {report['conversion']['summary']}", ""]
    lines += _forward_lines(report["forward"])
    if "masked_forward" in report:
        m = report["masked_forward"]
        lines += [f"With {m['mask_ratio']:.0%} of the input tokens masked (the same tokens in both): max rel error "
                  f"{m['max_rel_error']:.3e}, rel L2 {m['rel_l2_error']:.3e}.", ""]  # fmt: skip
    lines += _variable_lines(report["variables"], report["rollout"]["lead_hours"])
    first, growth = report["layers"]["first_jump"], report["layers"]["largest_growth"]
    lines += ["## Layer by layer", ""]
    if first:
        lines += [f"The error first jumps (above 1e-6 and tenfold) at **{first}**.", ""]
    else:
        lines += ["The error never jumps (never above 1e-6 and tenfold over the layer before).", ""]
    if growth:
        lines += [f"Largest growth: ×{growth['factor']:.3g} at {growth['layer']} (error {growth['error']:.3e}).", ""]
    lines += ["![layers](layers.png)", "", *_path_lines(report["layers"])]
    g = report["gradients"]
    losses = f"loss torch {g['loss']['torch']:.6g}, MindSpore {g['loss']['mindspore']:.6g}"
    lines += ["## Gradients", "", f"Largest relative gradient error {g['grad_max_rel_error']:.3e} "
              f"({g['worst_parameter']}); {losses}."]  # fmt: skip
    if g["without_torch_gradient"]:
        names = ", ".join(g["without_torch_gradient"])
        lines.append(f"Parameters torch leaves without gradient ({names}): MindSpore max |grad| "
                     f"{g['without_torch_gradient_max_abs']:.3e} (must be 0).")  # fmt: skip
    lines += ["", "![gradients](gradients.png)", ""]
    t = report["training"]
    lines += ["## Loss curves", "", f"{len(t['torch'])} AdamW steps (lr {t['lr']:g}), same start and batches: "
              f"largest relative loss difference {t['max_rel_diff']:.3e}.", ""]  # fmt: skip
    lines += ["![loss curves](loss_curves.png)", ""]
    lines += _rollout_lines(report["rollout"], headline)
    lines += ["![difference maps](difference_maps.png)", "", "![spectra](spectra.png)", ""]
    return "\n".join(lines)


def _variable_lines(variables: dict, hours: list[float]) -> list[str]:
    """The headline variables (U0, T0, S0 for the ocean): how far apart the frameworks are, lead by lead."""
    header = " | ".join(f"+{h:g} h" for h in hours)
    lines = ["## Variable by variable", "", "Forecast fields, MindSpore vs PyTorch: rel L2 per lead; drift = the last "
             "lead's difference / the first lead's.", "", f"| variable | forward max rel | {header} | drift |",
             "|---" * (len(hours) + 3) + "|"]  # fmt: skip
    for name, v in variables.items():
        leads = " | ".join(f"{e:.1e}" for e in v["field_rel_l2_by_lead"])
        lines.append(f"| {name} | {v['forward_max_rel_error']:.1e} | {leads} | ×{v['drift']:.3g} |")
    return [*lines, ""]


def _path_lines(layers: dict) -> list[str]:
    """The error along the model: each top-level module's outputs and the output of each repeated step (blocks,
    processor steps) with its growth over the step before, in execution order; then every probed layer."""
    steps = {s["layer"]: s for series in layers.get("steps", {}).values() for s in series}
    lines = ["The error along the model: top-level modules and repeated steps (× the error one step before; "
             "`name[i]`: the i-th tensor of a tuple output).", "",
             "| layer | max rel error | rel L2 | × step before |", "|---|---|---|---|"]  # fmt: skip
    every = ["| layer | max rel error | rel L2 |", "|---|---|---|"]
    for name, m in layers["layers"].items():
        cells = f"| {name} | {m['max_rel_error']:.3e} | {m['rel_l2_error']:.3e} |"
        every.append(cells)
        if name in steps or "." not in name:
            growth = steps.get(name, {}).get("growth")
            lines.append(cells + ("" if growth is None else f" ×{growth:.3g}") + " |")
    return [*lines, "", "<details><summary>Every probed layer</summary>", "", *every, "", "</details>", ""]


def _forward_lines(forward: dict) -> list[str]:
    lines = ["## Forward", "", "| mode | max abs error | max rel error | rel L2 error |", "|---|---|---|---|"]
    for mode in ("pynative", "graph"):
        m = forward[mode]
        lines.append(f"| {mode} | {m['max_abs_error']:.3e} | {m['max_rel_error']:.3e} | {m['rel_l2_error']:.3e} |")
    lines += ["", "Per output channel (GRAPH mode): max rel error", "", "| channel | max rel error | rel L2 |",
              "|---|---|---|"]  # fmt: skip
    for name, m in forward["graph"]["channels"].items():
        lines.append(f"| {name} | {m['max_rel_error']:.3e} | {m['rel_l2_error']:.3e} |")
    return [*lines, ""]


def _rollout_lines(rollout: dict, headline: list[str]) -> list[str]:
    worst = rollout["worst"]
    lines = ["## Rollout", "", f"{rollout['steps']} steps from {rollout['inits']} initial times, identical weights. "
             f"Largest |RMSE_ms − RMSE_torch| / RMSE_torch: {rollout['rollout_rmse_rel_diff']:.3e} "
             f"({worst['channel']}, +{worst['lead_hours']:g} h).", ""]  # fmt: skip
    lines += ["| channel | lead (h) | RMSE torch | RMSE MindSpore | rel diff |", "|---|---|---|---|---|"]
    ms_rows = {(r["channel"], r["lead_hours"]): r for r in rollout["scores"]["mindspore"]}
    diffs = {(r["channel"], r["lead_hours"]): r["rel_diff"] for r in rollout["rmse_rel_diff"]}
    for row in rollout["scores"]["torch"]:
        key = (row["channel"], row["lead_hours"])
        if row["channel"] in headline:
            cells = f"{row['rmse']:.5g} | {ms_rows[key]['rmse']:.5g} | {diffs[key]:.2e}"
            lines.append(f"| {key[0]} | {key[1]:g} | {cells} |")
    return [*lines, "", "![rollout RMSE](rollout_rmse.png)", ""]
