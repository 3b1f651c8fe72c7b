"""The scan's summary, verdict and Markdown page, built from the report dict alone (no framework imports)."""

from __future__ import annotations

import re
from collections import Counter

STATUS_ORDER = ("unknown", "missing", "adapter", "differs", "ok")
MAX_WHERE = 3


def _probe_kind(text: str | None) -> str:
    if text is None:
        return "no snippet"
    return text.split(":")[0].split(" (")[0].split(";")[0]


def summarise(report: dict) -> dict:
    """Counts by status and by probe outcome, the blocking ops, and a one-line verdict."""
    rows = report["ops"]
    by_status = Counter(r["status"] for r in rows)
    by_probe = Counter(_probe_kind(r["probe"]) for r in rows)
    # A failing counterpart blocks unless earthport supplies an adapter whose own path runs.
    failing = [
        r["op"] for r in rows
        if (r["probe"] or "").startswith("fails") and not (r["status"] == "adapter" and _adapter_runs(r["probe"]))
    ]  # fmt: skip
    blocking = [r["op"] for r in rows if r["status"] in ("missing", "unknown")] + failing
    verdict = (
        f"{by_status['adapter']} ops need adapters (provided), {by_status['differs']} differ (pass the noted "
        f"arguments), {by_status['missing']} missing, {by_status['unknown']} unknown"
    )
    if report["probed"]:
        verdict += f"; on MindSpore {report['backend']}: {len(failing)} counterparts fail without an adapter"
        if by_probe["unavailable"]:
            verdict += f" ({report['backend']} unavailable: nothing could be probed)"
    verdict = ("ready to port: " if not blocking else f"blocked by {len(blocking)} ops: ") + verdict
    return {
        "distinct_ops": len(rows),
        "calls": sum(r["count"] for r in rows),
        "by_status": {s: by_status[s] for s in STATUS_ORDER},
        "by_probe": dict(sorted(by_probe.items())),
        "blocking": blocking,
        "default_findings": len(report["defaults"]),
        "verdict": verdict,
    }


def _adapter_runs(probe: str) -> bool:
    """An adapter op whose native counterpart fails but whose adapter path runs (or the FFT's matmul path)."""
    return bool(re.search(r"adapter [^:]+: runs|adapter path: matmul", probe))


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def compact_where(where: dict[str, int]) -> str:
    """``blocks.0.filter, blocks.1.filter`` -> ``blocks.*.filter (x2)``; at most a few patterns, then ``+N more``."""
    patterns: Counter = Counter()
    for path, count in where.items():
        patterns[re.sub(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.|$)", "*", path)] += count
    shown = [f"{p} (x{n})" if n > 1 else p for p, n in list(patterns.items())[:MAX_WHERE]]
    more = len(patterns) - MAX_WHERE
    return ", ".join(shown) + (f", +{more} more" if more > 0 else "")


def render_markdown(report: dict) -> str:
    """The migration report as Markdown: summary, ops, default differences, optimizer advisory."""
    summary = report["summary"]
    lines = [
        f"# Migration scan: {report['model']}",
        "",
        f"- target: `{report['target']}`, kwargs `{report['kwargs']}`, input {report['input_shape']}",
        f"- graph: {report['graph']}; torch {report['torch']}",
        f"- MindSpore: {report['mindspore']}; backend {report['backend']}"
        + ("" if report["probed"] else " (not probed)"),
    ]
    if report.get("fft_adapter"):
        fft = report["fft_adapter"]
        state = "present" if fft["present"] else "not found: reported by name"
        detail = f" ({fft['detail']})" if fft.get("detail") else ""
        lines.append(f"- FFT adapter: `{fft['module']}` ({state}); path: {fft['path']}{detail}")
    counts = ", ".join(f"{n} {s}" for s, n in summary["by_status"].items())
    lines += ["", "## Summary", "", f"{summary['distinct_ops']} distinct ops, {summary['calls']} calls: {counts}.",
              f"Probes: {', '.join(f'{n} {k}' for k, n in summary['by_probe'].items())}.", "",
              f"**Verdict: {summary['verdict']}.**"]  # fmt: skip
    if summary["blocking"]:
        lines.append(f"Blocking: {', '.join(f'`{op}`' for op in summary['blocking'])}.")
    op_rows = [[f"`{r['op']}`", r["count"], compact_where(r["where"]), r["mindspore"] or "?", r["status"],
                r["probe"] or "-", r["note"]] for r in report["ops"]]  # fmt: skip
    lines += ["", "## Ops", "", *_table(["op", "count", "where", "MindSpore", "status", "probe", "note"], op_rows)]
    default_rows = [[f"`{d['module_type']}`", f"{d['count']}: {', '.join(d['instances'][:6])}"
                     + (" ..." if d["count"] > 6 else ""), d["values"], f"`{d['mindspore']}`", d["advice"]]
                    for d in report["defaults"]]  # fmt: skip
    lines += ["", "## Default differences", ""]
    lines += _table(["layer", "instances", "values", "MindSpore", "advice"], default_rows) if default_rows else [
        "No layers with known default differences."]  # fmt: skip
    optimizer_rows = [[f"`{o['torch']}`", f"`{o['mindspore']}`", o["advice"]] for o in report["optimizer"]]
    lines += ["", "## Optimizer advisory", "", *_table(["torch", "MindSpore", "advice"], optimizer_rows), ""]
    return "\n".join(lines)
