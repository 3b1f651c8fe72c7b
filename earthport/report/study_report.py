"""The study report, built from run records only: ``OUT/report/index.md`` and ``index.html`` with PNG plots.

Sections (the paper's tables and figures, with earthport's measurements):

- the study itself: each stage's status and time, and the machine and software it ran on;
- headline skill, WeatherBench style (z500 / t850 / t2m, or the data set's headline channels), per data set;
- training efficiency per framework x device (Tables 2 and 3): time per epoch, epochs to convergence, total;
- inference time (Table 4) and energy (Table S1), from infer and bench records;
- loss curves per platform (Figure S1);
- per-variable accuracy of each framework side by side, with the baselines (Figure 2);
- the parity summary from ``earthport verify``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from earthport import files  # noqa: E402
from earthport.errors import DataError  # noqa: E402
from earthport.metrics import headline_channels, headline_table, to_markdown  # noqa: E402
from earthport.records.store import readable  # noqa: E402
from earthport.report import efficiency  # noqa: E402

HEADLINE_LEADS = (24, 48, 72, 120, 240)  # hours; a data set without these shows its own leads
STYLE = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}.note{color:#666}"  # noqa: E501


def load_records(root: Path) -> dict[str, list[dict]]:
    """Every run record under ``root`` by kind, each with its ``path`` (other JSON, such as a data set's
    metadata, is left out; an unreadable file is skipped with a warning naming it)."""
    found: dict[str, list[dict]] = {}
    for path, record in readable(sorted(Path(root).rglob("*.json"))):
        found.setdefault(record["kind"], []).append({**record, "path": str(path)})
    return found


def write_study_report(out: str | Path) -> Path:
    """Write the report for the study under ``out``; returns the HTML page's path."""
    out = Path(out)
    if not (out / "study.json").is_file():
        raise DataError(out / "study.json", "not found: expected the folder of an `earthport study --out` run")
    directory = files.make_dir(out / "report")
    records = load_records(out)
    sections: list[tuple[str, str, pd.DataFrame | None, str | None]] = []  # title, text, table, figure
    if records.get("study"):
        sections.append(_study(records["study"][-1], records))
    infer = records.get("infer", [])
    scores, kinds = _scores(infer), _kinds(infer)
    for name, table in headline_tables(scores, kinds).items():
        sections.append((f"Headline skill: {name}", "RMSE and ACC at the leads the data allows (test years).",
                         table, None))  # fmt: skip
    sections += _efficiency_sections(records)
    sections.append(("Loss curves per platform", "Train and validation loss per epoch (Figure S1).", None,
                     _plot_losses(records.get("train", []), directory)))  # fmt: skip
    for name, frame in scores.items():
        figure = _plot_accuracy(name, frame, _headline(frame, kinds[name]), directory)
        sections.append((f"Accuracy per variable: {name}", "RMSE per lead, each framework beside the baselines "
                         "(Figure 2).", None, figure))  # fmt: skip
    sections.append(_parity(records.get("verify", []), out))
    files.write_text(directory / "index.md", _markdown(sections))
    files.write_text(directory / "index.html", _html(sections))
    return directory / "index.html"


def headline_rmse(out: str | Path) -> dict[str, pd.DataFrame]:
    """Per data set of the study under ``out``: RMSE of each forecast (columns) per headline channel and lead
    (rows) — the headline table's numbers in a shape that fits a terminal."""
    tables = {}
    infer = load_records(Path(out)).get("infer", [])
    kinds = _kinds(infer)
    for name, scores in _scores(infer).items():
        channels = _headline(scores, kinds[name]) or list(dict.fromkeys(scores["channel"]))[:3]
        leads = [h for h in HEADLINE_LEADS if h in set(scores["lead_hours"])] or sorted(set(scores["lead_hours"]))
        wide = scores.pivot_table(index=["channel", "lead_hours"], columns="forecast", values="rmse", sort=False)
        rows = [(channel, lead) for channel in channels for lead in leads if (channel, lead) in wide.index]
        tables[name] = wide.loc[rows].reset_index().rename(columns={"lead_hours": "lead (h)"})
    return tables


def headline_tables(scores: dict[str, pd.DataFrame], kinds: dict[str, str]) -> dict[str, pd.DataFrame]:
    """WeatherBench-style RMSE/ACC table per data set: its headline channels at the headline leads."""
    return {name: headline_table(frame, channels=_headline(frame, kinds[name]), lead_hours=HEADLINE_LEADS)
            for name, frame in scores.items()}  # fmt: skip


def _headline(scores: pd.DataFrame, kind: str) -> list[str]:
    return headline_channels(kind, list(dict.fromkeys(scores["channel"])))


def _kinds(infer: list[dict]) -> dict[str, str]:
    """The data kind (atmosphere, ocean) of each data set the infer records scored."""
    return {Path(record["data"]["path"]).name: record["data"].get("kind", "atmosphere") for record in infer}


def _scores(infer: list[dict]) -> dict[str, pd.DataFrame]:
    """Scores per data set: each framework's model as ``fourcastnet (torch)``, the baselines once."""
    by_data: dict[str, list[pd.DataFrame]] = {}
    for record in infer:
        name = Path(record["data"]["path"]).name
        frame = pd.DataFrame(record["scores"])
        framework = record.get("framework", "torch")
        is_model = ~frame["forecast"].isin(["persistence", "climatology"])
        frame.loc[is_model, "forecast"] = frame.loc[is_model, "forecast"] + f" ({framework})"
        if by_data.get(name):  # the baselines are the same in every record of a data set
            frame = frame[is_model]
        by_data.setdefault(name, []).append(frame)
    return {name: _models_first(pd.concat(frames, ignore_index=True)) for name, frames in sorted(by_data.items())}


def _models_first(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows of the models (sorted by name) before the baselines'."""
    baseline = scores["forecast"].isin(["persistence", "climatology"])
    order = sorted(set(scores.loc[~baseline, "forecast"])) + ["persistence", "climatology"]
    rank = scores["forecast"].map({name: i for i, name in enumerate(order)})
    return scores.iloc[rank.argsort(kind="stable")].reset_index(drop=True)


def _study(study: dict, records: dict[str, list[dict]]) -> tuple[str, str, pd.DataFrame, None]:
    """The stages with their status and time; the machine and software versions from a run record."""
    table = pd.DataFrame([{"stage": s["name"], "status": s["status"], "seconds": s["seconds"], "error": s["error"]}
                          for s in study["stages"]])  # fmt: skip
    environment: dict = next((r["environment"] for kind in ("train", "bench") for r in records.get(kind, [])
                              if "environment" in r), {})  # fmt: skip
    software = ", ".join(f"{k} {environment[k]}" for k in ("python", "torch", "mindspore", "numpy") if k in environment)
    skipped = "; ".join(f"{k}: {v}" for k, v in study.get("skipped_frameworks", {}).items())
    text = (
        f"Preset {study['preset']}, scale {study['scale']}, device {study['device']}, frameworks "
        f"{', '.join(study['frameworks'])}, {study['seconds']:.0f} s in all. Machine: "
        f"{environment.get('cpu', '?')} x {environment.get('cpu_count', '?')} cores, GPU "
        f"{environment.get('gpu_driver', '?')}. Software: {software}."
    )
    if skipped:
        text += f" Skipped: {skipped}."
    return ("Study", text, table, None)


def _efficiency_sections(records: dict[str, list[dict]]) -> list[tuple[str, str, pd.DataFrame | None, None]]:
    sections = []
    if records.get("train"):
        sections.append(("Training efficiency", "Per framework and device (Tables 2 and 3); time per epoch excludes "
                         "the first epoch (compilation, warm-up).", efficiency.training_time(_by_run(records["train"])),
                         None))  # fmt: skip
    timed = records.get("infer", []) + records.get("bench", [])
    if timed:
        text = (
            "Single-step latency, warm (Table 4); rollout s/step is a whole rollout's wall clock per step, "
            "compilation, I/O and scoring included."
        )
        sections.append(("Inference time", text, efficiency.inference_time(_by_run(timed)), None))
    if records.get("bench"):
        table, note = _one_note(efficiency.energy_efficiency(_by_run(records["bench"])))
        sections.append(("Energy and efficiency", "Per step and per sample (Table S1); an energy source that is not "
                         f"there is reported as unavailable, estimates are labelled. {note}", table, None))  # fmt: skip
    return sections


def _one_note(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The energy table with a note shared by every row said once, below the title, instead of in each row."""
    notes = set(table["note"])
    if len(notes) != 1 or not next(iter(notes)):
        return table, ""
    note = next(iter(notes))
    compact = table.drop(columns="note").replace(efficiency.SEE_NOTE, "unavailable")
    return compact, f"Every row: {note}."


def _by_run(records: list[dict]) -> dict[str, dict]:
    """Records labelled by the file that holds them (its directory for a run's record.json)."""
    labels = {}
    for record in records:
        path = Path(record["path"])
        name = path.name.removesuffix(".json").removesuffix(".record")  # infer writes NAME.record.json
        labels[path.parent.name if name == "record" else name] = record
    return labels


def _plot_losses(train: list[dict], directory: Path) -> str | None:
    if not train:
        return None
    names = sorted({_panel(r) for r in train})
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for record in train:
            if _panel(record) != name:
                continue
            processes = record.get("processes", 1)
            label = f"{record.get('framework', 'torch')} ({record['device']['name']})"
            label += f" x{processes}" if processes > 1 else ""
            epochs = [h["epoch"] for h in record["history"]]
            line = ax.plot(epochs, [h["train_loss"] for h in record["history"]], label=f"{label} train")[0]
            ax.plot(epochs, [h["valid_loss"] for h in record["history"]], "--", color=line.get_color(),
                    label=f"{label} valid")  # fmt: skip
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    return _save(figure, directory / "loss_curves.png")


def _panel(train: dict) -> str:
    """A training run's loss-curve panel: its folder's name (``<model>-<data>[-pretrain]-<framework>[-xN]``)
    without the framework and processes, so that every platform's curves of one training share a panel."""
    name = re.sub(r"-x\d+$", "", Path(train["path"]).parent.name)
    return name.rsplit("-", 1)[0]


def _plot_accuracy(name: str, scores: pd.DataFrame, headline: Sequence[str], directory: Path) -> str:
    channels = [c for c in headline if c in set(scores["channel"])] or list(dict.fromkeys(scores["channel"]))[:3]
    figure, axes = plt.subplots(1, len(channels), figsize=(4.2 * len(channels), 3.2), squeeze=False)
    for ax, channel in zip(axes[0], channels, strict=True):
        rows = scores[scores["channel"] == channel]
        for forecast, group in rows.groupby("forecast", sort=False):
            style = ":" if forecast in ("persistence", "climatology") else "-o"
            ax.plot(group["lead_hours"], group["rmse"], style, label=forecast, markersize=3)
        units = rows["units"].iloc[0] if "units" in rows else ""
        ax.set_title(f"{channel} RMSE ({units})")
        ax.set_xlabel("lead (h)")
    axes[0][0].legend(fontsize=7)
    return _save(figure, directory / f"accuracy_{name}.png")


def _parity(verify: list[dict], out: Path) -> tuple[str, str, pd.DataFrame | None, None]:
    """Each model's latest verify record: its targets, measured, passed or not."""
    if not verify:
        return ("Parity", "unavailable: no verify record (MindSpore absent or the verify stage failed)", None, None)
    latest = {record["model"]: record for record in verify}
    rows, texts = [], []
    for model, record in latest.items():
        rows += [{"model": model, "measure": k, "target": v["target"], "measured": v["measured"], "passed": v["passed"]}
                 for k, v in record["targets"].items()]  # fmt: skip
        link = Path(record["path"]).parent / "verify.md"
        verdict = "PASSED" if record["passed"] else "FAILED"
        texts.append(f"{model} {verdict}: {record['weights']} on {Path(record['data']).name}; full report "
                     f"{link.relative_to(out)}")  # fmt: skip
    return ("Parity (PyTorch vs MindSpore)", "; ".join(texts), pd.DataFrame(rows), None)


def _save(figure: plt.Figure, path: Path) -> str:
    files.atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=100, bbox_inches="tight"))
    plt.close(figure)
    return path.name


def _markdown(sections: list) -> str:
    parts = ["# earthport study", ""]
    for title, text, table, figure in sections:
        parts += [f"## {title}", "", text, ""]
        if table is not None:
            parts += [to_markdown(table), ""]
        if figure:
            parts += [f"![{title}]({figure})", ""]
    return "\n".join(parts)


def _html(sections: list) -> str:
    body = ["<h1>earthport study</h1>"]
    for title, text, table, figure in sections:
        body += [f"<h2>{html.escape(title)}</h2>", f"<p class='note'>{html.escape(text)}</p>"]
        if table is not None:
            body.append(table.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.4g}", border=0))
        if figure:
            body.append(f"<img src='{html.escape(figure)}' alt='{html.escape(title)}'>")
    head = f"<head><meta charset='utf-8'><title>earthport study</title><style>{STYLE}</style></head>"
    return f"<!doctype html><html>{head}<body>{''.join(body)}</body></html>\n"
