"""The report's charts: matplotlib figures as inline SVG (text kept as text, no external reference)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

from matplotlib import rc_context
from matplotlib.figure import Figure

COLORS = {"critical": "#7f0000", "high": "#d7301f", "medium": "#fc8d59", "low": "#fdcc8a", "info": "#bdbdbd",
          "open": "#d7301f", "acknowledged": "#fc8d59", "resolved": "#1a9850"}
STYLE = {"svg.fonttype": "none", "svg.hashsalt": "logwarden", "font.size": 9, "axes.spines.top": False,
         "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3}
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)  # the XML declaration and DOCTYPE (which names a URL)


def _svg(fig: Figure, title: str) -> str:
    buf = io.StringIO()
    with rc_context(STYLE):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Title": title})
    svg = _PROLOGUE.sub("", buf.getvalue(), count=1)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{title}" class="chart" ', 1)


def _figure(rows: int = 1, height: float = 2.6) -> Figure:
    with rc_context(STYLE):
        fig = Figure(figsize=(7.2, height * rows), layout="constrained")
    return fig


def lines(title: str, days: Sequence[str], series: dict[str, list[float | None]], ylabel: str) -> str:
    """One line per name over the days (None: no records that day)."""
    with rc_context(STYLE):
        fig = _figure(height=2.3)
        ax = fig.add_subplot()
        for name, values in series.items():
            xs = [d[5:] for d, v in zip(days, values, strict=True) if v is not None]
            ax.plot(xs, [v for v in values if v is not None], marker="o", markersize=3, label=name)
        ax.set_ylabel(ylabel)
        ax.set_ylim(top=100.5)
        ax.legend(fontsize=7, loc="lower left", frameon=False)
        ax.tick_params(axis="x", labelrotation=45)
        return _svg(fig, title)


def bars(title: str, labels: Sequence[str], stacks: dict[str, Sequence[float]], xlabel: str) -> str:
    """Horizontal bars, one per label, stacked by the groups of ``stacks`` (a group per colour)."""
    with rc_context(STYLE):
        fig = _figure(height=max(1.6, 0.28 * len(labels) + 0.9))
        ax = fig.add_subplot()
        left = [0.0] * len(labels)
        for group, values in stacks.items():
            ax.barh(list(labels), list(values), left=left, label=group, color=COLORS.get(group))
            left = [a + b for a, b in zip(left, values, strict=True)]
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        if len(stacks) > 1:
            ax.legend(fontsize=7, loc="lower right", frameon=False)
        return _svg(fig, title)


def columns(title: str, labels: Sequence[str], groups: dict[str, Sequence[float]], ylabel: str) -> str:
    """Grouped vertical columns: one cluster per label, a column per group."""
    with rc_context(STYLE):
        fig = _figure()
        ax = fig.add_subplot()
        width = 0.8 / max(1, len(groups))
        for n, (group, values) in enumerate(groups.items()):
            xs = [i + n * width for i in range(len(labels))]
            ax.bar(xs, list(values), width=width, label=group, color=COLORS.get(group))
        ax.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(labels))], list(labels))
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, frameon=False)
        return _svg(fig, title)
