"""Prove a port: the same weights and inputs give the same outputs, gradients, loss curves and forecast skill
in PyTorch (the reference) and MindSpore, measured and reported; exit non-zero when a target is missed.

    OUT/verify.json   every measurement and the targets
    OUT/verify.md     the report, with PNG plots beside it

Order: forward (PyNative and GRAPH), layer by layer, gradients of one backward pass, then N training steps
from the same start on the same batches in both frameworks (loss curves), then a K-step rollout from the
same trained weights (torch's after the N steps, converted again) scored per variable and lead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from earthport import files
from earthport.backends.base import backend, token_permutations
from earthport.config import TrainConfig
from earthport.data.fcn import FcnDirectory
from earthport.data.generate import generate
from earthport.data.samples import SamplePairs, epoch_order
from earthport.metrics import LeadScorer, headline_channels, parity
from earthport.models import registry
from earthport.models.base import LoadedModel, ModelSpec
from earthport.models.registry import DEFAULT as DEFAULT_MODEL
from earthport.progress import console
from earthport.records.record import write_record
from earthport.workflows.evaluate import open_fcn
from earthport.workflows.infer import load_checkpoint

TARGETS = {"forward_max_rel_error": 1e-5, "grad_max_rel_error": 1e-4, "rollout_rmse_rel_diff": 1e-3}


def verify(
    out: str | Path, model: str = DEFAULT_MODEL, preset: str = "tiny", data: str | Path | None = None,
    steps: int = 10, train_steps: int = 20, batch_size: int = 2, inits: int = 4, lr: float = 1e-3,
    loss: str = "mse", seed: int = 0, checkpoint: str | Path | None = None, overwrite: bool = False,
) -> dict:  # fmt: skip
    """Run every comparison, write verify.json / verify.md and plots; returns the report (``passed``).

    Without ``checkpoint`` the torch model is the preset, seeded, on ``data`` (default: generated data on the
    preset's grid); with one (any weight file ``earthport infer`` reads) its trained weights are verified.
    An existing ``out`` is replaced only with ``overwrite`` and only if earthport wrote it.
    """
    out = Path(out)
    files.replace(out, overwrite, folder=True)
    dataset = open_fcn(data if data is not None else _default_data(out, model, preset, seed))
    loaded = load_checkpoint(checkpoint, "torch", dataset) if checkpoint else None
    spec = registry.spec(model) if loaded is None else loaded.spec
    config, (valid, test) = _setup(spec, preset, dataset, steps, loaded)
    pair = _pair(spec, config, seed, None if loaded is None else loaded.module)
    report = {"model": spec.name, "preset": preset, "config": config.to_dict(), "data": str(dataset.root),
              "weights": str(checkpoint) if checkpoint else f"preset {preset}, seed {seed}",
              "conversion": pair.report.to_dict()}  # fmt: skip
    mask = None if valid.mask is None else valid.mask[valid.prognostic]
    inputs, targets = _batch(valid, range(min(batch_size, len(valid))))
    names = [dataset.meta.names[i] for i in valid.prognostic]
    console.print("[bold]verify[/] forward, layers, gradients")
    report["forward"] = _forward(pair, inputs, names)
    if "masked_pretrain" in spec.objectives:
        report["masked_forward"] = _masked_forward(pair, inputs, config, seed)
    report["layers"] = _layers(pair, inputs)
    report["gradients"] = _gradients(pair, inputs, targets, mask, loss)
    console.print(f"[bold]verify[/] {train_steps} training steps in both frameworks")
    report["training"] = _training(pair, valid, train_steps, batch_size, mask, lr, loss, seed)
    console.print(f"[bold]verify[/] {steps}-step rollouts")
    pair = _pair(spec, config, seed, pair.reference)  # identical weights again: torch's trained ones
    clim = dataset.stats().time_means[0][valid.prognostic, : spec.grid(config)[0]]
    report["rollout"], arrays = _rollout(pair, test, steps, inits, names, clim)
    headline = headline_channels(dataset.meta.kind, names) or names[:3]
    report["variables"] = _variables(report, headline)
    report["targets"], report["passed"] = _judge(report)
    from earthport.report.verify_report import write_report

    write_report(out, report, arrays, headline)
    write_record(out / "verify.json", "verify", report)
    return report


@dataclass
class _Pair:
    """The torch reference and its MindSpore twin, each measured by its own backend's probe."""

    reference: Any  # the torch module
    torch: Any  # its probe
    mindspore: Any  # the MindSpore probe
    names: dict[str, str]  # torch parameter name -> MindSpore's
    report: Any  # the weight conversion report


def _pair(spec: ModelSpec, config: Any, seed: int, reference: Any) -> _Pair:
    """Same weights in both frameworks (``migrate.bridge``, imported only now: it imports both)."""
    from earthport.migrate import bridge

    built = bridge.build_pair(spec.name, config, seed, reference=reference)
    torch_probe = backend("torch").PROBE(built.reference, spec.history)
    ms_probe = backend("mindspore").PROBE(built.candidate, spec.history)
    return _Pair(built.reference, torch_probe, ms_probe, built.names, built.report)


def _default_data(out: Path, model: str, preset: str, seed: int) -> Path:
    """Generated data of the model's first generated data set (atmosphere or ocean) on the preset's grid, written
    once under OUT/data."""
    directory = out / "data"
    if not (directory / "metadata.json").exists():
        spec = registry.spec(model)
        grid = spec.grid(spec.preset(preset))
        kind = next((name for name in spec.datasets if name in ("atmosphere", "ocean")), "atmosphere")
        files.write_whole(directory, True, partial(generate, kind=kind, grid=grid, years=3, steps_per_year=60,
                                                   seed=seed))  # fmt: skip
    return directory


def _setup(spec: ModelSpec, preset: str, dataset: FcnDirectory, steps: int, loaded: LoadedModel | None):
    """The model config (the checkpoint's, or the preset fitted to the data) and (valid one-step, test
    K-step) samples with the model's channels on its rows."""
    if loaded is None:
        names = dataset.meta.with_role("prognostic") + dataset.meta.with_role("forcing")
        static, dt, day = [], 1, "target"
    else:
        names, static, dt, day = loaded.data_channels, loaded.static, loaded.dt, loaded.forcing_day
    dataset = FcnDirectory(dataset.root, names)
    stats, fields = dataset.stats(), {name: dataset.static(name) for name in static}
    if loaded is None:
        probe = SamplePairs(dataset.series("valid"), stats, history=spec.history)
        height, width = dataset.meta.shape[1:]
        config = spec.fit(spec.preset(preset), height, width, probe.in_channels, probe.out_channels)
    else:
        config = loaded.config
    rows = spec.grid(config)[0]
    valid = SamplePairs(dataset.series("valid"), stats, dt, 1, fields, rows, spec.history, day)
    test = SamplePairs(dataset.series("test"), stats, dt, steps, fields, rows, spec.history, day)
    return config, (valid, test)


def _batch(pairs: SamplePairs, indices) -> tuple[np.ndarray, np.ndarray]:
    """inputs [B, in, H, W] and one-step prognostic targets [B, out, H, W]."""
    items = [pairs[int(i)] for i in indices]
    inputs = np.stack([x for x, _ in items])
    targets = np.stack([y[0, : pairs.out_channels] for _, y in items])
    return inputs, targets


def _forward(pair: _Pair, inputs: np.ndarray, names: list[str]) -> dict:
    result = {}
    expected = pair.torch.forward(inputs)
    for mode, graph in (("pynative", False), ("graph", True)):
        got = pair.mindspore.forward(inputs, graph=graph)
        result[mode] = {**parity.compare(expected, got), "channels": parity.compare_channels(expected, got, names)}
    result["forward_max_abs_error"] = max(result[m]["max_abs_error"] for m in ("pynative", "graph"))
    result["forward_max_rel_error"] = max(result[m]["max_rel_error"] for m in ("pynative", "graph"))
    result["forward_rel_l2_error"] = max(result[m]["rel_l2_error"] for m in ("pynative", "graph"))
    return result


def _masked_forward(pair: _Pair, inputs: np.ndarray, config: Any, seed: int, ratio: float = 0.75) -> dict:
    """Forward with ``ratio`` of the input tokens masked, the same tokens in both frameworks (GRAPH mode), drawn as
    the trainers draw them."""
    ids = token_permutations(TrainConfig(objective="masked_pretrain", seed=seed), config, len(inputs), step=0)
    expected = pair.torch.forward(inputs, masking=(ratio, ids))
    return {"mask_ratio": ratio, **parity.compare(expected, pair.mindspore.forward(inputs, True, (ratio, ids)))}


def _layers(pair: _Pair, inputs: np.ndarray) -> dict:
    """Submodules of the same name in both trees, in torch's execution order; ``steps``: the error after each
    repeated step (FourCastNet's blocks, GraphCast's processor steps: ``mesh_gnn.steps[0]`` the mesh node latents,
    ``[1]`` the mesh edge latents)."""
    seen, got = pair.torch.layer_outputs(inputs), pair.mindspore.layer_outputs(inputs)
    layers = [(name, parity.compare(seen[name], got[name])) for name in seen if name in got]
    errors = [(name, measures["max_rel_error"]) for name, measures in layers]
    growth = parity.largest_growth(errors)
    return {"layers": dict(layers), "first_jump": parity.first_jump(errors), "largest_growth": growth,
            "steps": parity.by_step(errors)}  # fmt: skip


def _gradients(pair: _Pair, inputs, targets, mask, loss: str) -> dict:
    torch_loss, torch_grads = pair.torch.gradients(inputs, targets, mask, loss)
    ms_loss, ms_grads = pair.mindspore.gradients(inputs, targets, mask, loss)
    per_parameter, without = {}, {}
    for name, expected in torch_grads.items():
        got = ms_grads[pair.names[name]]
        if expected is None:  # torch leaves it without gradient (NVlabs' unused final norm): must be 0
            without[name] = float(np.abs(got).max())
        else:
            per_parameter[name] = parity.compare(expected, got, where=name)
    worst = max(per_parameter, key=lambda n: per_parameter[n]["max_rel_error"])
    return {
        "loss": {"torch": torch_loss, "mindspore": ms_loss},
        "parameters": per_parameter,
        "without_torch_gradient": without,
        "grad_max_rel_error": per_parameter[worst]["max_rel_error"],
        "worst_parameter": worst,
        "without_torch_gradient_max_abs": max(without.values(), default=0.0),
    }


def _training(pair: _Pair, pairs: SamplePairs, train_steps: int, batch_size: int, mask, lr: float, loss: str,
              seed: int) -> dict:
    """Loss curves of ``train_steps`` AdamW steps on the same batches (valid split, seeded order)."""
    order = epoch_order(len(pairs), epoch=0, seed=seed)
    order = np.resize(order, train_steps * batch_size)
    batches = [_batch(pairs, order[i * batch_size : (i + 1) * batch_size]) for i in range(train_steps)]
    torch_curve, ms_curve = (probe.train(batches, mask, lr, weight_decay=0.01, clip=1.0, loss=loss)
                             for probe in (pair.torch, pair.mindspore))  # fmt: skip
    differences = [abs(b - a) / abs(a) for a, b in zip(torch_curve, ms_curve, strict=True)]
    return {"lr": lr, "loss": loss, "torch": torch_curve, "mindspore": ms_curve, "max_rel_diff": max(differences)}


def _rollout(pair: _Pair, test: SamplePairs, steps: int, inits: int, names: list[str],
             clim: np.ndarray) -> tuple[dict, dict]:
    """Score both rollouts per variable and lead; (report, arrays for plots)."""
    meta = test.series.meta
    picks = test.spread(inits)
    items = [picks[i] for i in range(len(picks))]
    inputs = np.stack([x for x, _ in items])
    targets = np.stack([y for _, y in items])
    forcings = targets[:, :, test.out_channels :] if test.forcing else None
    expected, got = (probe.rollout(inputs, steps, forcings) for probe in (pair.torch, pair.mindspore))
    truth = test.denormalise(targets[:, :, : test.out_channels])
    fields = {"torch": test.denormalise(expected), "mindspore": test.denormalise(got)}
    hours = [meta.time_step_hours * (k + 1) for k in range(steps)]
    mask = None if test.mask is None else test.mask[test.prognostic]
    scores = {}
    for framework, forecast in fields.items():
        scorer = LeadScorer(framework, names, hours, test.lat, mask)
        for lead in range(steps):
            scorer.add(lead, forecast[:, lead], truth[:, lead], clim)
        scores[framework] = scorer.table().to_dict("records")
    differences = _rmse_differences(scores)
    apart = [parity.compare_channels(expected[:, k], got[:, k], names) for k in range(steps)]  # z-scores
    report = {"steps": steps, "inits": len(picks), "lead_hours": hours, "scores": scores, **differences,
              "field_rel_l2": {name: [lead[name]["rel_l2_error"] for lead in apart] for name in names}}  # fmt: skip
    return report, {"truth": truth, **fields, "lat": test.lat, "lon": meta.lon, "names": names, "hours": hours}


def _rmse_differences(scores: dict) -> dict:
    """|RMSE_ms - RMSE_torch| / RMSE_torch per channel and lead, and the largest."""
    reference = {(r["channel"], r["lead_hours"]): r["rmse"] for r in scores["torch"]}
    rows = []
    for row in scores["mindspore"]:
        expected = reference[(row["channel"], row["lead_hours"])]
        rows.append({"channel": row["channel"], "lead_hours": row["lead_hours"],
                     "rel_diff": abs(row["rmse"] - expected) / expected})  # fmt: skip
    worst = max(rows, key=lambda r: r["rel_diff"])
    return {"rmse_rel_diff": rows, "rollout_rmse_rel_diff": worst["rel_diff"], "worst": worst}


def _variables(report: dict, names: list[str]) -> dict:
    """Per headline variable (the paper's U0, T0, S0 for the ocean): the forward error, and how far apart the two
    frameworks' forecasts are at each lead (fields, rel L2) and their RMSEs; ``drift`` is the last lead's field
    difference over the first's (about 1: the port adds no error that grows with the rollout)."""
    forward = report["forward"]["graph"]["channels"]
    rollout = report["rollout"]
    rmse = {(r["channel"], r["lead_hours"]): r["rel_diff"] for r in rollout["rmse_rel_diff"]}
    variables = {}
    for name in names:
        apart = rollout["field_rel_l2"][name]
        variables[name] = {
            "forward_max_rel_error": forward[name]["max_rel_error"],
            "field_rel_l2_by_lead": apart,
            "rmse_rel_diff_by_lead": [rmse[(name, hours)] for hours in rollout["lead_hours"]],
            "drift": apart[-1] / apart[0] if apart[0] > 0 else float(apart[-1] > 0),
        }
    return variables


def _judge(report: dict) -> tuple[dict, bool]:
    masked = report.get("masked_forward", {}).get("max_rel_error", 0.0)
    measured = {
        "forward_max_rel_error": max(report["forward"]["forward_max_rel_error"], masked),
        "grad_max_rel_error": report["gradients"]["grad_max_rel_error"],
        "rollout_rmse_rel_diff": report["rollout"]["rollout_rmse_rel_diff"],
    }
    targets = {k: {"target": TARGETS[k], "measured": v, "passed": bool(v <= TARGETS[k])} for k, v in measured.items()}
    unused = report["gradients"]["without_torch_gradient_max_abs"]
    targets["unused_parameters_zero_gradient"] = {"target": 0.0, "measured": unused, "passed": unused == 0.0}
    return targets, all(t["passed"] for t in targets.values())
