"""The PNG chart behind /shop stats: revenue per day, one panel per currency (matplotlib).

Drawn on a bare `Figure` with the Agg canvas (no pyplot, no global state, no display), so it
is safe to call from a worker thread; the cog runs it in `asyncio.to_thread`.
"""

from __future__ import annotations

import io
from datetime import date

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import num2date
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from bot.money import decimals

WIDTH, HEIGHT, DPI = 1000, 500, 100  # pixels of the PNG
MAX_PANELS = 4  # currencies drawn (the biggest earners); the embed lists every one
BAR, GRID = "#5865F2", "#DDDDDD"


def revenue_chart(days: list[date], per_day: dict[str, list[int]], title: str) -> bytes:
    """A PNG of WIDTH × HEIGHT pixels: bars of revenue per day in each currency's own units
    (currencies are never added together); "No revenue" when there was none."""
    figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    ranked = sorted(per_day.items(), key=lambda item: -sum(item[1]))[:MAX_PANELS]
    if not ranked or not days:
        axes = figure.subplots()
        axes.set_axis_off()
        axes.text(0.5, 0.5, "No revenue in this period", ha="center", va="center", fontsize=16)
        figure.suptitle(title, fontsize=14)
        return _png(figure)
    panels = figure.subplots(len(ranked), 1, sharex=True, squeeze=False)[:, 0]
    for axes, (currency, amounts) in zip(panels, ranked, strict=True):
        scale = 10 ** decimals(currency)
        values = [amount / scale for amount in amounts]
        axes.bar(days, values, color=BAR, width=0.8)
        axes.set_ylabel(currency.upper())
        axes.set_ylim(bottom=0, top=max(max(values) * 1.15, 1))
        axes.yaxis.set_major_locator(MaxNLocator(nbins=4))
        places = decimals(currency)
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _p, n=places: f"{v:,.{n}f}"))
        axes.grid(axis="y", color=GRID)
        axes.set_axisbelow(True)
        for side in ("top", "right"):
            axes.spines[side].set_visible(False)
    panels[-1].xaxis.set_major_locator(MaxNLocator(nbins=10))
    panels[-1].xaxis.set_major_formatter(FuncFormatter(_day_label))
    figure.suptitle(title, fontsize=14)
    figure.tight_layout()
    return _png(figure)


def _day_label(value: float, _position: int) -> str:
    """Matplotlib dates are days since 1970-01-01: show them as `Mar 05`."""
    return num2date(value).strftime("%b %d")


def _png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()
