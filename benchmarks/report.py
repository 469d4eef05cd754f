"""Turn per-repeat samples into medians, lolo/bare ratios, target checks, Markdown, JSON, PNG."""

from __future__ import annotations

import json
import math
import statistics
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOLO, BARE = "lolo-run", "bare"
Samples = dict[str, dict[str, list[float]]]  # side -> metric key -> one value per repeat


@dataclass(frozen=True)
class Target:
    """A goal from issue 5: on the lolo/bare ratio, or on lolo-run's absolute value."""

    on: str  # "ratio" or "absolute"
    op: str  # ">=" or "<="
    value: float
    stretch: float | None = None

    def text(self) -> str:
        base = f"{'ratio' if self.on == 'ratio' else 'lolo-run'} {self.op} {self.value:g}"
        return base + (f" (stretch {self.op} {self.stretch:g})" if self.stretch else "")

    def met(self, value: float) -> bool | None:
        if math.isnan(value):
            return None
        return value >= self.value if self.op == ">=" else value <= self.value


@dataclass(frozen=True)
class Metric:
    key: str
    scenario: str
    label: str
    fmt: Callable[[float], str]
    target: Target | None = None


def _num(digits: int) -> Callable[[float], str]:
    return lambda v: "n/a" if math.isnan(v) else f"{v:,.{digits}f}"


def headline_metrics(s1_clients: list[int]) -> list[Metric]:
    out: list[Metric] = []
    for n in s1_clients:
        big = n >= 100
        out.append(
            Metric(
                f"S1.N{n}.deliveries_per_s",
                "S1",
                f"N={n}: deliveries/s",
                _num(0),
                Target("ratio", ">=", 0.9) if big else None,
            )
        )
        out.append(
            Metric(
                f"S1.N{n}.cpu_s_per_100k",
                "S1",
                f"N={n}: server CPU s / 100k deliv.",
                _num(3),
                Target("ratio", "<=", 1.15, 0.85) if big else None,
            )
        )
    out += [
        Metric("S2.p50_ms", "S2", "p50 latency (ms)", _num(2)),
        Metric("S2.p99_ms", "S2", "p99 latency (ms)", _num(2), Target("ratio", "<=", 1.25)),
        Metric("S2.p99_sliced_ms", "S2", "p99, median of 1 s slices (ms)", _num(2)),
        Metric(
            "S3.deliveries_per_s",
            "S3",
            "N=10, all send: deliveries/s",
            _num(0),
            Target("ratio", ">=", 0.7),
        ),
        Metric(
            "S3.cpu_s_per_100k",
            "S3",
            "server CPU s / 100k deliv.",
            _num(3),
            Target("ratio", "<=", 0.85),
        ),  # issue 9: history on, bare keeps none
        Metric("S4.conn_per_s", "S4", "connections/s", _num(0)),
        Metric("S4.p99_handshake_ms", "S4", "p99 handshake (ms)", _num(1)),
        Metric("S5.idle_rss_mib", "S5", "idle RSS (MiB)", _num(1)),
        Metric(
            "S5.kib_per_conn",
            "S5",
            "KiB per idle connection",
            _num(1),
            Target("absolute", "<=", 20),
        ),
        Metric(
            "S6.startup_s",
            "S6",
            "exec to first handshake (s)",
            _num(3),
            Target("absolute", "<=", 0.3),
        ),
    ]
    return out


def median(values: list[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


def medians(samples: Samples) -> dict[str, dict[str, float]]:
    return {side: {k: median(v) for k, v in metrics.items()} for side, metrics in samples.items()}


def ratio(lolo: float, bare: float) -> float:
    if math.isnan(lolo) or math.isnan(bare) or bare == 0:
        return math.nan
    return lolo / bare


def evaluate(metrics: list[Metric], med: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    rows = []
    for m in metrics:
        lolo = med.get(LOLO, {}).get(m.key, math.nan)
        bare = med.get(BARE, {}).get(m.key, math.nan)
        if math.isnan(lolo) and math.isnan(bare):
            continue
        r = ratio(lolo, bare)
        met = None
        if m.target is not None:
            met = m.target.met(r if m.target.on == "ratio" else lolo)
        rows.append(
            {
                "key": m.key,
                "scenario": m.scenario,
                "label": m.label,
                "lolo": lolo,
                "bare": bare,
                "ratio": r,
                "target": m.target.text() if m.target else "",
                "met": met,
                "fmt": m.fmt,
            }
        )
    return rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def headroom_rows(med: dict[str, dict[str, float]]) -> list[list[str]]:
    """Client vs server CPU per throughput scenario, to show the generator was not the limit."""
    keys = sorted(
        {
            k.rsplit(".", 1)[0]
            for side in med.values()
            for k in side
            if k.endswith(".client_cpu_util")
        }
    )
    pct = _pct
    rows = []
    for prefix in keys:
        for side in (LOLO, BARE):
            m = med.get(side, {})
            rows.append(
                [
                    prefix,
                    side,
                    pct(m.get(f"{prefix}.server_cpu_util")),
                    pct(m.get(f"{prefix}.server_core_busy")),
                    pct(m.get(f"{prefix}.client_cpu_util")),
                    pct(m.get(f"{prefix}.client_core_busy")),
                    pct(m.get(f"{prefix}.other_cpu_util")),
                ]
            )
    return rows


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.0f}%"


def render_markdown(doc: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    machine = doc["machine"]
    parts = [
        f"# Chat benchmark: lolo-run vs bare websockets ({doc['generated']})",
        "",
        f"Machine: {machine['cpu_model']}, {machine['logical_cpus']} logical CPUs, "
        f"Linux {machine['kernel']}, Python {machine['python']}, websockets "
        f"{machine['websockets']}. Pinning: {doc['pinning']}. Repeats: "
        f"{doc['settings']['repeats']} (interleaved {doc['order']}), medians shown. "
        f"Commit: {doc.get('commit', '?')}. Took {doc.get('elapsed_s', 0):.0f} s; "
        f"{doc.get('noisy_reruns', 0)} figure(s) re-run because other processes disturbed them.",
        "",
        f"- lolo-run: `{doc['launched'].get(LOLO, doc['commands'][LOLO])}`",
        f"- bare: `{doc['launched'].get(BARE, doc['commands'][BARE])}`",
        f"- S2 rate: {doc['s2_rate_note']}",
        "",
    ]
    table = []
    for r in rows:
        fmt = r["fmt"]
        met = {None: "", True: "yes", False: "**no**"}[r["met"]]
        rr = "n/a" if math.isnan(r["ratio"]) else f"{r['ratio']:.2f}"
        table.append(
            [r["scenario"], r["label"], fmt(r["lolo"]), fmt(r["bare"]), rr, r["target"], met]
        )
    parts.append(_md_table(["", "figure", LOLO, BARE, "lolo/bare", "target", "met"], table))
    parts += [
        "",
        "## Generator headroom (medians; 100% = one core)",
        "",
        "Server and client each run pinned to their own core. `core busy` counts irq and "
        "softirq time too, which no process is charged for; `other` is CPU used by any "
        "other process on the machine during the window (interference).",
        "",
    ]
    parts.append(
        _md_table(
            [
                "scenario",
                "server",
                "server CPU",
                "server core busy",
                "client CPU",
                "client core busy",
                "other",
            ],
            headroom_rows(doc["medians"]),
        )
    )
    parts += ["", "## Correctness (summed over all repeats)", ""]
    corr = [
        [side, *(str(v) for v in doc["correctness"][side].values())]
        for side in (LOLO, BARE)
        if side in doc["correctness"]
    ]
    if corr:
        header = ["server", *next(iter(doc["correctness"].values())).keys()]
        parts.append(_md_table(header, corr))
    if doc["errors"]:
        parts += ["", "## Errors", ""] + [f"- {e}" for e in doc["errors"]]
    if doc["warnings"]:
        parts += ["", "## Warnings", ""] + [f"- {w}" for w in doc["warnings"]]
    parts.append("")
    return "\n".join(parts)


def write_outputs(out_dir: Path, stamp: str, doc: dict[str, Any], markdown: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    text = json.dumps(doc, indent=2, default=str, allow_nan=True)
    for name in (stamp, "latest"):
        (out_dir / f"{name}.md").write_text(markdown)
        (out_dir / f"{name}.json").write_text(text)
        written += [out_dir / f"{name}.md", out_dir / f"{name}.json"]
    return written


def write_chart(out_dir: Path, stamp: str, rows: list[dict[str, Any]]) -> Path | str:
    """PNG of S1 throughput by N and S2 latency; returns the path or why it was skipped."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install matplotlib)"
    s1 = [r for r in rows if r["key"].endswith(".deliveries_per_s") and r["scenario"] == "S1"]
    cpu = [r for r in rows if r["key"].endswith(".cpu_s_per_100k") and r["scenario"] == "S1"]
    s2 = [r for r in rows if r["scenario"] == "S2"]
    if not s1 and not s2:
        return "chart skipped: neither S1 nor S2 was run"
    panels = [
        (s1, "S1 fan-out burst: throughput", "deliveries / s"),
        (cpu, "S1: server CPU per 100k deliveries", "CPU seconds"),
        (s2, "S2 latency at a fixed rate", "ms"),
    ]
    panels = [p for p in panels if p[0]]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (group, title, unit) in zip(axes[0], panels, strict=True):
        labels = [textwrap.fill(r["label"].split(":")[0].replace(" (ms)", ""), 16) for r in group]
        xs = range(len(group))
        ax.bar([x - 0.2 for x in xs], [r["lolo"] for r in group], 0.4, label=LOLO)
        ax.bar([x + 0.2 for x in xs], [r["bare"] for r in group], 0.4, label=BARE)
        for x, r in zip(xs, group, strict=True):
            if not math.isnan(r["ratio"]):
                top = max(v for v in (r["lolo"], r["bare"]) if not math.isnan(v))
                ax.annotate(f"x{r['ratio']:.2f}", (x, top), ha="center", va="bottom")
        ax.set_xticks(list(xs), labels)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        ax.margins(y=0.15)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=2)
    fig.suptitle("lolo-run vs bare websockets (medians; xR = lolo/bare)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path = out_dir / f"{stamp}.png"
    fig.savefig(path, dpi=110)
    fig.savefig(out_dir / "latest.png", dpi=110)
    plt.close(fig)
    return path
