"""GraphCast's message-passing aggregation: edges per second of each way to sum the messages per receiver, in torch
and in MindSpore, forward and forward + backward, on earthport's own graphs.

One step is what earthport's GraphCast does in every message-passing step (``earthport/models/graphcast/torch.py``
``BipartiteGNN.sums`` and ``MeshGNN.step``; ``mindspore.py`` the same), without the MLPs around it: from node
latents v_s [S, 1, L] (senders) and v_r [R, 1, L] (receivers; on the multimesh one tensor v [M, 1, L] is both) and
edge latents e [E, 1, L], the messages m = e + v_s[senders] + v_r[receivers] [E, 1, L] (gathered as the model
does: ``v[idx]`` in torch, ``ops.gather`` in MindSpore) and their sum per receiver [R, 1, L]. Forward + backward
also takes the gradients of <sums, w> (w a fixed random [R, 1, L] cotangent) w.r.t. e and the node latents
(torch ``autograd.grad``; MindSpore ``value_and_grad``, which returns the loss as well, so the forward cannot be
pruned). Variants (the aggregation only; the gathers and adds are the same in all):

- torch: ``index_add_`` into zeros (what the model uses); ``scatter_add_`` with the receivers expanded to
  [E, 1, L] (a view); ``torch.segment_reduce`` (sum, ``lengths`` = in-degrees) on edges stored sorted by receiver
  (the permutation of senders, receivers and e is applied once, outside the timing: the graph is static);
  ``torch.sparse.mm`` of the receivers' incidence matrix A [R, E] (COO, coalesced, and CSR) with m viewed [E, L];
- MindSpore: ``ops.UnsortedSegmentSum`` (what the model uses); ``ops.TensorScatterAdd`` into zeros with indices
  [E, 1]; ``ops.scatter_add``, ``ops.index_add`` and ``mint.index_add`` into zeros. A missing kernel or gradient
  is reported ``unavailable: <MindSpore's reason>`` for that phase (nothing is substituted).

Graphs (``--graph``), from ``mesh.build_graphs(level, *regular_grid(181, 360))`` (the 1-degree grid of the
``small`` preset; ``default_graphs``' construction, not its cache): ``mesh5`` the level-5 multimesh (81,900 edges
into 10,242 nodes), ``mesh6`` level 6 (327,660 into 40,962; the paper's mesh), ``g2m-1deg`` grid2mesh at level 5
(101,892 edges from 65,160 grid nodes into 10,242) and ``m2g-1deg`` mesh2grid (195,480 into 65,160). Edges keep
the builder's order except for ``segment_reduce`` (the JSON says whether that order was sorted already).

Each framework runs in its own process (MindSpore's CPU threads keep spinning after work and slow torch in the same
process), alternating A B A B for ``--rounds`` rounds; threads are each framework's default. In a process every
variant and phase runs ``--warmup`` untimed steps (MindSpore compiles there; the seconds are kept as ``first_s``),
then ``--repeats`` timed rounds in which the variants take turns (each step timed alone with
``time.perf_counter``; MindSpore's steps end with ``.asnumpy()`` of every result, a zero-copy fence on the CPU).
Results are checked against a float64 scipy reference on the first step and on a step after the timing: the
largest absolute difference of the sums (forward) or of the loss and every gradient (forward + backward), also
relative to the reference's largest value, must stay under ``--tolerance`` or the row says MISMATCH. Reported:
medians over all timed steps of all rounds, IQRs, edges per second (E / median step), the step-time ratio to
torch's ``index_add_`` and how busy the machine was (``os.getloadavg()`` before and after each process, and the
cores other processes kept busy meanwhile, as in ``framework_speed.py``; 0 is a quiet machine).

    .venv/bin/python benchmarks/graphcast_message_passing.py --graph mesh5 --out runs/bench/graphcast_mp_mesh5.json
    .venv/bin/python benchmarks/graphcast_message_passing.py --graph g2m-1deg --out runs/bench/graphcast_mp_g2m.json
    .venv/bin/python benchmarks/graphcast_message_passing.py --graph m2g-1deg --out runs/bench/graphcast_mp_m2g.json
    .venv/bin/python benchmarks/graphcast_message_passing.py --graph mesh6 --rounds 3 \
        --out runs/bench/graphcast_mp_mesh6.json
    .venv/bin/python benchmarks/graphcast_message_passing.py --graph mesh6 --latent 512 --repeats 5 \
        --runners torch,mindspore,mindspore-pynative --out runs/bench/graphcast_mp_mesh6_paper.json

A quick look (seconds): ``--graph mesh5 --latent 16 --repeats 2 --rounds 1``. A process above ``--max-rss-gb``, or
with the machine's available memory under 1 GiB, or running past ``--timeout-s``, is stopped and its runner
reported unavailable (``framework_speed.py``'s watchdog).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np

GRAPHS = {  # --graph: (mesh level, edge set of mesh.Graphs)
    "mesh5": (5, "mesh"),
    "mesh6": (6, "mesh"),
    "g2m-1deg": (5, "grid2mesh"),
    "m2g-1deg": (5, "mesh2grid"),
}
GRID = (181, 360)  # the 1-degree grid (both poles) of GraphCast's ``small`` preset
RUNNERS = {"torch": ("torch", ""), "mindspore": ("mindspore", "graph"), "mindspore-pynative": ("mindspore", "pynative")}
PHASES = {"forward": "fwd", "forward_backward": "f+b"}
REFERENCE = ("torch", "index_add")  # what the model does in torch: the table's step-time ratios are to it
CHUNK = 1 << 16  # rows at a time in the checks
NOTE = 70  # characters of a reason in the table's notes (the JSON has it whole, with the exception's type)


def graph(name: str) -> SimpleNamespace:
    """``--graph``'s edge set: senders, receivers int64 [E], the sender and receiver node counts, whether the
    senders and receivers are one node set (the multimesh) and whether the builder's receivers come sorted."""
    from earthport.models.graphcast.mesh import build_graphs, regular_grid

    level, edge_set = GRAPHS[name]
    graphs = build_graphs(level, *regular_grid(*GRID))
    edges = getattr(graphs, edge_set)
    mesh, grid = len(graphs.mesh_nodes), len(graphs.grid_nodes)
    sizes = {"mesh": (mesh, mesh), "grid2mesh": (grid, mesh), "mesh2grid": (mesh, grid)}[edge_set]
    receivers = edges.receivers.astype(np.int64)
    return SimpleNamespace(name=name, level=level, edge_set=edge_set, senders=edges.senders.astype(np.int64),
                           receivers=receivers, n_send=sizes[0], n_receive=sizes[1], shared=edge_set == "mesh",
                           edges=len(receivers), sorted=bool(np.all(np.diff(receivers) >= 0)))  # fmt: skip


def problem(name: str, latent: int) -> SimpleNamespace:
    """The graph and fixed random float32 inputs: edge latents [E, 1, L], node latents (one tensor on the
    multimesh, else senders' and receivers'), the cotangent [R, 1, L]; and the float64 reference."""
    p = graph(name)
    rng = np.random.default_rng(0)
    p.latent = latent
    p.e = rng.standard_normal((p.edges, 1, latent), dtype=np.float32)
    shapes = [p.n_send] if p.shared else [p.n_send, p.n_receive]
    p.nodes = [rng.standard_normal((n, 1, latent), dtype=np.float32) for n in shapes]
    p.w = rng.standard_normal((p.n_receive, 1, latent), dtype=np.float32)
    p.reference = _reference(p)
    return p


def _reference(p: SimpleNamespace) -> dict:
    """float64: the sums [R, 1, L], the loss <sums, w> with the sum of its terms' magnitudes, and the gradients
    of the loss w.r.t. the node latents (w.r.t. e it is w[receivers], checked row by row); a few latent columns at a
    time, so no [E, L] float64 array is ever whole."""
    from scipy import sparse

    ones = np.ones(p.edges)
    to_receivers = sparse.csr_matrix((ones, (p.receivers, np.arange(p.edges))), shape=(p.n_receive, p.edges))
    to_senders = sparse.csr_matrix((ones, (p.senders, np.arange(p.edges))), shape=(p.n_send, p.edges))
    send, receive = p.nodes[0], p.nodes[-1]
    sums = np.empty((p.n_receive, 1, p.latent))
    sent_grad = np.empty((p.n_send, 1, p.latent))
    step = max(1, (1 << 24) // p.edges)  # latent columns: 16M float64 values per temporary
    for start in range(0, p.latent, step):
        cols = slice(start, start + step)
        messages = p.e[:, 0, cols] + send[p.senders, 0, cols].astype(np.float64) + receive[p.receivers, 0, cols]
        sums[:, 0, cols] = to_receivers @ messages
        sent_grad[:, 0, cols] = to_senders @ p.w[p.receivers, 0, cols].astype(np.float64)
    received_grad = p.w.astype(np.float64) * np.bincount(p.receivers, minlength=p.n_receive)[:, None, None]
    node_grads = [sent_grad + received_grad] if p.shared else [sent_grad, received_grad]
    terms = sums * p.w
    return {"sums": sums, "loss": float(terms.sum()), "loss_scale": float(np.abs(terms).sum()),
            "node_grads": node_grads}  # fmt: skip


def _max_difference(got: np.ndarray, want: np.ndarray, rows: np.ndarray | None = None) -> tuple[float, float]:
    """(max |got - want|, max |want|), ``CHUNK`` rows at a time; with ``rows``, want is ``want[rows]``."""
    expected = len(rows) if rows is not None else len(want)
    if got.shape[0] != expected or got.shape[1:] != want.shape[1:]:
        return float("inf"), 1.0
    worst = 0.0
    for start in range(0, len(got), CHUNK):
        part = slice(start, start + CHUNK)
        target = want[rows[part]] if rows is not None else want[part]
        worst = max(worst, float(np.max(np.abs(got[part].astype(np.float64) - target))))
    return worst, float(np.max(np.abs(want)))


def check(p: SimpleNamespace, phase: str, result: tuple, receivers: np.ndarray) -> dict:
    """A step's result (numpy) against the reference: the largest absolute difference and the largest relative
    to its tensor's largest reference value. ``forward``: (sums,); ``forward_backward``: (loss, grad e, grads of
    the node latents), the edges in the order of ``receivers``."""
    ref = p.reference
    if phase == "forward":
        pairs = [_max_difference(result[0], ref["sums"])]
    else:
        loss, edge_grad, *node_grads = result
        pairs = [(abs(float(loss) - ref["loss"]), ref["loss_scale"]), _max_difference(edge_grad, p.w, receivers)]
        pairs += [_max_difference(got, want) for got, want in zip(node_grads, ref["node_grads"], strict=True)]
    return {"max_abs": max(a for a, _ in pairs), "max_rel": max(a / (s or 1.0) for a, s in pairs)}


def torch_variants(p: SimpleNamespace) -> tuple[dict, dict]:
    """{variant: (receivers in the variant's edge order, {phase: step})}, the threads in force; a step returns its
    result as numpy arrays on request (``step(True)``)."""
    import torch

    threads = {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}
    order = np.argsort(p.receivers, kind="stable")
    layouts = {"builder": (p.senders, p.receivers, p.e), "sorted": (p.senders[order], p.receivers[order], None)}
    n, width, edges = p.n_receive, p.latent, p.edges
    nodes = [torch.from_numpy(v) for v in p.nodes]
    leaves = [v.detach().requires_grad_() for v in nodes]  # same memory, tracked
    w = torch.from_numpy(p.w)

    def tensors(layout: str) -> tuple:
        senders, receivers, e = layouts[layout]
        e = torch.from_numpy(p.e[order] if e is None else e)
        return torch.from_numpy(senders), torch.from_numpy(receivers), e, e.detach().requires_grad_()

    def incidence(receivers: torch.Tensor) -> torch.Tensor:
        index = torch.stack([receivers, torch.arange(edges)])
        return torch.sparse_coo_tensor(index, torch.ones(edges), (n, edges)).coalesce()

    def build(name: str, layout: str) -> Callable:
        """The variant's aggregation: messages [E, 1, L] -> sums [R, 1, L]."""
        _, receivers, _, _ = tensors_of[layout]
        if name == "index_add":
            return lambda m: m.new_zeros((n, 1, width)).index_add_(0, receivers, m)
        if name == "scatter_add":
            expanded = receivers.view(edges, 1, 1).expand(edges, 1, width)
            return lambda m: m.new_zeros((n, 1, width)).scatter_add_(0, expanded, m)
        if name == "segment_reduce":
            lengths = torch.bincount(receivers, minlength=n)
            return lambda m: torch.segment_reduce(m, "sum", lengths=lengths, axis=0)
        matrix = incidence(receivers)
        matrix = matrix.to_sparse_csr() if name.endswith("CSR") else matrix
        return lambda m: torch.sparse.mm(matrix, m.view(edges, width)).view(n, 1, width)

    def steps(aggregate: Callable, layout: str) -> dict:
        senders, receivers, e, e_leaf = tensors_of[layout]

        def messages(e, nodes):
            return e + nodes[0][senders] + nodes[-1][receivers]

        def forward(fetch=False):
            sums = aggregate(messages(e, nodes))
            return (sums.numpy(),) if fetch else sums

        def forward_backward(fetch=False):
            loss = (aggregate(messages(e_leaf, leaves)) * w).sum()
            grads = torch.autograd.grad(loss, [e_leaf, *leaves])
            return (loss.item(), *(g.numpy() for g in grads)) if fetch else grads

        return {"forward": forward, "forward_backward": forward_backward}

    tensors_of = {layout: tensors(layout) for layout in layouts}
    plan = {"index_add": "builder", "scatter_add": "builder", "segment_reduce": "sorted",
            "sparse.mm COO": "builder", "sparse.mm CSR": "builder"}  # fmt: skip

    def variant(name: str, layout: str) -> tuple:
        try:
            return layouts[layout][1], steps(build(name, layout), layout)
        except Exception as err:  # a variant that cannot even be built (a sparse layout, say) is reported
            return None, _reason(err)

    return {name: variant(name, layout) for name, layout in plan.items()}, threads


def mindspore_variants(p: SimpleNamespace, mode: str) -> tuple[dict, dict]:
    """As ``torch_variants``, in MindSpore: compiled (``ms.jit``) in graph ``mode``, op by op in pynative."""
    import mindspore as ms
    from mindspore import Tensor, mint, ops

    from earthport.backends.mindspore.runtime import configure_threads

    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    senders, receivers = Tensor(p.senders.astype(np.int32)), Tensor(p.receivers.astype(np.int32))
    indices = receivers.expand_dims(1)
    n, width = p.n_receive, p.latent
    e, w = Tensor(p.e), Tensor(p.w)
    nodes = [Tensor(v) for v in p.nodes]
    segment_sum, scatter = ops.UnsortedSegmentSum(), ops.TensorScatterAdd()

    def zeros():
        return ops.zeros((n, 1, width), ms.float32)

    def unsorted_segment_sum(m):
        return segment_sum(m, receivers, n)

    def tensor_scatter_add(m):
        return scatter(zeros(), indices, m)

    def scatter_add(m):
        return ops.scatter_add(zeros(), receivers, m)

    def index_add(m):
        return ops.index_add(zeros(), receivers, m, 0)

    def mint_index_add(m):
        return mint.index_add(zeros(), 0, receivers, m)

    def steps(aggregate: Callable) -> dict:
        if p.shared:

            def forward_fn(e, v):
                return aggregate(e + ops.gather(v, senders, 0) + ops.gather(v, receivers, 0))

            def loss_fn(e, v):
                return (forward_fn(e, v) * w).sum()
        else:

            def forward_fn(e, v_send, v_receive):
                return aggregate(e + ops.gather(v_send, senders, 0) + ops.gather(v_receive, receivers, 0))

            def loss_fn(e, v_send, v_receive):
                return (forward_fn(e, v_send, v_receive) * w).sum()

        both_fn = ms.value_and_grad(loss_fn, grad_position=tuple(range(1 + len(nodes))))
        if mode == "graph":
            forward_fn, both_fn = ms.jit(forward_fn), ms.jit(both_fn)

        def forward(fetch=False):
            sums = forward_fn(e, *nodes)
            return (sums.asnumpy(),) if fetch else sums.asnumpy()

        def forward_backward(fetch=False):
            loss, grads = both_fn(e, *nodes)
            arrays = [t.asnumpy() for t in (loss, *grads)]  # the fence
            return (float(arrays[0]), *arrays[1:]) if fetch else arrays

        return {"forward": forward, "forward_backward": forward_backward}

    plan = {"UnsortedSegmentSum": unsorted_segment_sum, "TensorScatterAdd": tensor_scatter_add,
            "ops.scatter_add": scatter_add, "ops.index_add": index_add, "mint.index_add": mint_index_add}  # fmt: skip
    return {name: (p.receivers, steps(fn)) for name, fn in plan.items()}, configure_threads()


def _reason(err: BaseException) -> str:
    """``unavailable: <type>: <the first line that says something>``: MindSpore's messages open with banners
    (``- Kernel select failed:``, then the reason) and run on into advice and node dumps, which are cut."""
    lines = [line.strip(" -|") for line in str(err).splitlines()]
    lines = [line for line in lines if line]
    text = " ".join(lines[:2] if len(lines) > 1 and len(lines[0]) < 40 and lines[0].endswith(":") else lines[:1])
    text = re.split(r", Please |\.node:", text)[0]
    return f"unavailable: {type(err).__name__}: {text[:200]}"


def worker(args: argparse.Namespace) -> None:
    """Measure one runner's variants in this process; prints ``RESULT <json>`` at the end."""
    from earthport.host import host_peak_rss_mb

    began = time.perf_counter()
    framework, mode = RUNNERS[args.worker]
    p = problem(args.graph, args.latent)
    setup_s = time.perf_counter() - began
    variants, threads = torch_variants(p) if framework == "torch" else mindspore_variants(p, mode)
    report: dict = {name: {} for name in variants}
    live: dict[tuple[str, str], Callable] = {}
    for name, (receivers, steps) in variants.items():
        for phase in PHASES:
            if isinstance(steps, str):  # the variant could not be built
                report[name][phase] = {"unavailable": steps}
                continue
            step, first = steps[phase], []
            print(f"PHASE {name} {phase}", flush=True)
            try:
                started = time.perf_counter()
                result = step(True)
                first.append(time.perf_counter() - started)
                checked = check(p, phase, result, receivers)
                del result
                for _ in range(args.warmup - 1):
                    started = time.perf_counter()
                    step()
                    first.append(time.perf_counter() - started)
            except Exception as err:  # a missing kernel or gradient: reported, never replaced
                report[name][phase] = {"unavailable": _reason(err)}
                continue
            report[name][phase] = {"first_s": first, "checks": [checked], "times": []}
            live[(name, phase)] = step
    for _ in range(args.repeats):  # the variants take turns, so a change in the machine's load hits them alike
        for (name, phase), step in live.items():
            started = time.perf_counter()
            step()
            report[name][phase]["times"].append(time.perf_counter() - started)
    for (name, phase), step in live.items():
        report[name][phase]["checks"].append(check(p, phase, step(True), variants[name][0]))
    record = {"version": importlib.import_module(framework).__version__, "threads": threads, "setup_s": setup_s,
              "peak_rss_mb": host_peak_rss_mb(), "wall_s": time.perf_counter() - began, "variants": report}  # fmt: skip
    print("RESULT " + json.dumps(record), flush=True)


def _run(runner: str, args: argparse.Namespace) -> dict:
    """One worker process for ``runner``: its record and the machine's load meanwhile, or why it is unavailable."""
    from framework_speed import run_watched  # this folder's: its watchdog and CPU accounting

    command = [sys.executable, __file__, "--worker", runner, "--graph", args.graph, "--latent", str(args.latent),
               "--warmup", str(args.warmup), "--repeats", str(args.repeats)]  # fmt: skip
    stdout, stderr, code, stopped, load = run_watched(command, args)
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if stopped or code or not lines:
        phases = [line.split(maxsplit=1)[1] for line in stdout.splitlines() if line.startswith("PHASE ")]
        where = f"in {phases[-1]}" if phases else "while building the inputs"
        tail = [ln for ln in stderr.strip().splitlines() if not ln.startswith("[WARNING")][-1:]
        tail = tail or [f"exit status {code}"]
        why = f"stopped {where}: {stopped}" if stopped else f"failed {where}: {tail[0][:300]}"
        return {"unavailable": f"unavailable: {runner} {why}", **load}
    return {**json.loads(lines[0][len("RESULT ") :]), **load}


def _summary(times: list[float], edges: int) -> dict:
    """Median and IQR of the step seconds, and of the edges per second."""
    seconds = np.asarray(times)
    q1, median, q3 = np.percentile(seconds, [25, 50, 75])
    r1, r3 = np.percentile(edges / seconds, [25, 75])
    return {"median_s": float(median), "iqr_s": float(q3 - q1), "n": int(seconds.size),
            "edges_per_s": edges / float(median), "edges_per_s_iqr": float(r3 - r1)}  # fmt: skip


def _combine(processes: list[dict], edges: int, tolerance: float) -> dict:
    """Each variant's phases over a runner's processes: timing summary, warm-up seconds, worst check."""
    variants: dict = {}
    for name in processes[0]["variants"]:
        variants[name] = {}
        for phase in PHASES:
            parts = [proc["variants"][name][phase] for proc in processes]
            missing = next((part["unavailable"] for part in parts if "unavailable" in part), None)
            if missing:
                variants[name][phase] = {"unavailable": missing}
                continue
            checks = [c for part in parts for c in part["checks"]]
            worst = {key: max(c[key] for c in checks) for key in ("max_abs", "max_rel")}
            variants[name][phase] = {**_summary([t for part in parts for t in part["times"]], edges),
                                     "first_s": [part["first_s"] for part in parts],
                                     "check": {**worst, "ok": worst["max_rel"] <= tolerance}}  # fmt: skip
    return variants


def collect(runners: list[str], args: argparse.Namespace, edges: int) -> dict[str, dict]:
    """Each runner's processes, A B A B; a runner whose process fails is not started again."""
    collected: dict[str, dict] = {runner: {"processes": []} for runner in runners}
    for round_ in range(args.rounds):
        for runner in runners:
            if "unavailable" in collected[runner]:
                continue
            result = _run(runner, args)
            collected[runner]["processes"].append(result)
            where = f"round {round_ + 1} {runner}"
            if "unavailable" in result:
                collected[runner]["unavailable"] = result["unavailable"]
                print(f"{where}: {result['unavailable']}", flush=True)
                continue
            rates = []
            for name, phases in result["variants"].items():
                timed = {PHASES[ph]: np.median(v["times"]) for ph, v in phases.items() if v.get("times")}
                rates += [f"{name} {short} {edges / t / 1e6:.1f}" for short, t in timed.items()]
            print(f"{where} (Medge/s): {', '.join(rates)}; load {result['load_before'][0]:.2f}, others' CPU "
                  f"{result['others_cpu_per_s']:.2f} cores", flush=True)  # fmt: skip
    for data in collected.values():
        done = [proc for proc in data["processes"] if "unavailable" not in proc]
        if done and "unavailable" not in data:
            data |= {"version": done[0]["version"], "threads": done[0]["threads"],
                     "others_cpu_per_s": max(proc["others_cpu_per_s"] for proc in done),
                     "peak_rss_mb": max(proc["peak_rss_mb"] for proc in done),
                     "variants": _combine(done, edges, args.tolerance)}  # fmt: skip
    return collected


def table(collected: dict[str, dict], title: str) -> None:
    """One row per runner and variant, printed as a rich table; adds each phase's ``time_ratio_to_reference``."""
    import pandas as pd

    from earthport.report.console import print_frame

    runner, variant = REFERENCE
    reference = collected.get(runner, {}).get("variants", {}).get(variant, {})
    rows = []
    for runner, data in collected.items():
        if "variants" not in data:
            rows.append({"runner": runner, "variant": "—", "note": data.get("unavailable", "")[: 2 * NOTE]})
            continue
        for name, phases in data["variants"].items():
            row: dict = {"runner": runner, "variant": name}
            notes, diffs = [], []
            for phase, short in PHASES.items():
                entry = phases[phase]
                if "unavailable" in entry:
                    notes.append(f"{short} unavailable: {entry['unavailable'].split(': ', 2)[-1][:NOTE]}")
                    row |= {f"{short} Medge/s": float("nan"), f"{short} ms": float("nan"),
                            f"{short} IQR ms": float("nan"), f"{short} x index_add": float("nan")}  # fmt: skip
                    continue
                base = reference.get(phase, {}).get("median_s")
                entry["time_ratio_to_reference"] = entry["median_s"] / base if base else float("nan")
                diffs.append(entry["check"]["max_rel"])
                if not entry["check"]["ok"]:
                    notes.append(f"{short} MISMATCH: max rel diff {entry['check']['max_rel']:.1e}")
                row |= {f"{short} Medge/s": round(entry["edges_per_s"] / 1e6, 2),
                        f"{short} ms": round(entry["median_s"] * 1e3, 1),
                        f"{short} IQR ms": round(entry["iqr_s"] * 1e3, 1),
                        f"{short} x index_add": round(entry["time_ratio_to_reference"], 2)}  # fmt: skip
            worst = float(f"{max(diffs, default=float('nan')):.2g}")
            rows.append(row | {"max rel diff": worst, "others' CPU": round(data["others_cpu_per_s"], 2),
                               "note": "; ".join(notes)})  # fmt: skip
    print_frame(pd.DataFrame(rows), title=title, floatfmt=".8g")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", choices=list(GRAPHS), default="mesh5")
    parser.add_argument("--latent", type=int, default=128, help="latent width L (small preset 128; paper 512)")
    parser.add_argument("--rounds", type=int, default=2, help="A B A B rounds of one process per runner")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per variant, phase and process")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (1 or more; the first is checked)")
    parser.add_argument("--runners", default="torch,mindspore", help=f"comma-separated of {list(RUNNERS)}")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest relative difference accepted")
    parser.add_argument("--max-rss-gb", type=float, default=16.0, help="stop a worker above this resident memory")
    parser.add_argument("--timeout-s", type=float, default=0, help="stop a worker after this long (0: never)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/graphcast_message_passing.json"))
    parser.add_argument("--worker", choices=list(RUNNERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.latent < 1 or args.rounds < 1 or args.repeats < 1 or args.warmup < 1:
        parser.error("--latent, --rounds, --repeats and --warmup must be 1 or more")
    if args.worker:
        return worker(args)
    runners = args.runners.split(",")
    if unknown := set(runners) - set(RUNNERS):
        parser.error(f"unknown runners {sorted(unknown)}; expected some of {list(RUNNERS)}")
    from earthport.files import write_text
    from earthport.host import cpu_model

    g = graph(args.graph)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    collected = collect(runners, args, g.edges)
    title = (f"{args.graph} ({g.edge_set}, level {g.level}, grid {GRID[0]}x{GRID[1]}): {g.edges:,} edges from "
             f"{g.n_send:,} into {g.n_receive:,} nodes, latent {args.latent}; median step, IQR, step time x torch "
             "index_add")  # fmt: skip
    table(collected, title)
    record = {"graph": args.graph, "mesh_level": g.level, "edge_set": g.edge_set, "grid": list(GRID),
              "edges": g.edges, "senders": g.n_send, "receivers": g.n_receive, "builder_order_sorted": g.sorted,
              "latent": args.latent, "rounds": args.rounds, "repeats": args.repeats, "warmup": args.warmup,
              "tolerance": args.tolerance, "reference": list(REFERENCE), "started": started, "results": collected,
              "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform(),
                          "python": platform.python_version(), "numpy": np.__version__}}  # fmt: skip
    write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
