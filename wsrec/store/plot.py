"""A picture of a session (``wsrec plot``): frames per second over time by channel, with
the time a stream was down shaded, and, where the venue gives its own time, receive
latency (p50 and p99 of ``ts - exch_ts``) over time in a second panel.

The numbers come from ``wsrec.store.timeline`` (one pass over five columns); this only
draws them, with matplotlib's object API on its Agg canvas: no pyplot, no display, and
no change to the backend of a program that imports wsrec. matplotlib is optional
(``pip install 'wsrec[plot]'``) and imported when a picture is drawn.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from wsrec.errors import WsrecError
from wsrec.store.timeline import Timeline, session_range, timeline, width_label
from wsrec.timefmt import NS, format_duration

__all__ = ["plot_session", "draw", "MISSING", "MAX_CHANNELS", "DEFAULT_SIZE"]

#: The error when matplotlib is not installed.
MISSING = "wsrec plot needs matplotlib: pip install 'wsrec[plot]'"
#: Channels drawn one by one (the most frames first); the rest are summed as one line.
MAX_CHANNELS = 8
#: Picture size in pixels.
DEFAULT_SIZE = (1200, 700)
_DPI = 100
#: When the bucket width is chosen: at least this many pixels per bucket, and about this
#: many rows per bucket on average (a rate from one frame or none is noise).
_PIXELS_PER_BUCKET = 3
_ROWS_PER_BUCKET = 5
#: ... and at least 1 ms wide (the time axis counts in float days: about 1 us apart).
_MIN_BUCKET_NS = 1_000_000
_GAP_COLOUR = "tab:red"
_SILENT_COLOUR = "0.85"


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise WsrecError(MISSING) from None
    return Figure, FigureCanvasAgg


def plot_session(session, output, *, bucket_ns: int | None = None,
                 size: tuple[int, int] = DEFAULT_SIZE, force: bool = False) -> dict:
    """Draw ``session`` into the PNG file ``output``; buckets ``bucket_ns`` wide (default:
    the narrowest round width of 1 ms or more giving at most one bucket per 3 pixels
    and per 5 rows of the session). Returns what was drawn: ``output``, ``bucket`` (its
    width as text) and ``bucket_ns``, ``buckets``, ``channels`` (the lines drawn),
    ``latency`` (those with a latency line), ``gaps`` (recorded gaps shaded). An
    existing ``output`` is replaced only with ``force``."""
    _matplotlib()   # before reading the session: no matplotlib, no work
    if os.path.lexists(output) and not (force and os.path.isfile(output)):
        raise WsrecError(f"{output} exists; pass --force to replace it" if
                         os.path.isfile(output) else f"{output} is not a file")
    buckets = max(1, min(size[0] // _PIXELS_PER_BUCKET, session.rows() // _ROWS_PER_BUCKET))
    t = timeline(session, buckets, bucket_ns=bucket_ns, min_bucket_ns=_MIN_BUCKET_NS,
                 latency=True)
    frames = sum(sum(counts) for counts in t.channels.values())
    span = session_range(session)
    title = (f"{session.venue}/{session.id}: {frames:,} frames received in "
             f"{format_duration(span[1] - span[0] if span else None)}")
    draw(t, output, size=size, title=title)
    shown = list(_channels(t))
    return {"output": str(output), "bucket": width_label(t.bucket_ns),
            "bucket_ns": t.bucket_ns, "buckets": t.buckets, "channels": shown,
            "latency": [name for name in shown if name in t.latency], "gaps": len(t.gaps)}


def _channels(t: Timeline) -> dict[str, list[int]]:
    """The channels to draw: the ``MAX_CHANNELS`` with the most frames, then the rest
    summed under one name."""
    ranked = sorted(t.channels.items(), key=lambda item: (-sum(item[1]), item[0]))
    shown = dict(ranked[:MAX_CHANNELS])
    rest = ranked[MAX_CHANNELS:]
    if rest:
        shown[f"{len(rest)} more channels"] = [sum(c) for c in zip(*(v for _, v in rest))]
    return shown


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """``[(first, last + 1)]`` of each run of True."""
    runs, start = [], None
    for i, flag in enumerate(flags + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def draw(t: Timeline, output, *, size: tuple[int, int] = DEFAULT_SIZE, title: str = "") -> None:
    """Draw a timeline into the PNG file ``output``, ``size`` pixels (width, height)."""
    import numpy as np
    from matplotlib import dates

    Figure, FigureCanvas = _matplotlib()
    shown = _channels(t)
    latency = [name for name in shown if name in t.latency]
    fig = Figure(figsize=(size[0] / _DPI, size[1] / _DPI), dpi=_DPI, layout="constrained")
    FigureCanvas(fig)
    panels = fig.subplots(2 if latency else 1, 1, sharex=True, squeeze=False,
                          height_ratios=[3, 2] if latency else [1])[:, 0]
    edges = dates.date2num(np.array(t.edges(), dtype="datetime64[ns]"))
    per_second = NS / t.bucket_ns
    rates = panels[0]
    for name, counts in shown.items():
        rates.stairs(np.array(counts) * per_second, edges, label=name, linewidth=1.2)
    total = [sum(c) for c in zip(*t.channels.values())] if t.channels else [0] * t.buckets
    # silence that every stream's recorded gap explains is shaded as down time only
    down = [all(flags) for flags in zip(*t.down.values())] if t.down else [False] * t.buckets
    labelled = set()
    for first, end in _runs([count == 0 and not gap for count, gap in zip(total, down)]):
        rates.axvspan(edges[first], edges[end], color=_SILENT_COLOUR, linewidth=0,
                      label=None if labelled else "no frames")
        labelled.add("silent")
    for _, start, end in t.gaps:
        span = dates.date2num(np.array([start, end], dtype="datetime64[ns]"))
        for ax in panels:
            ax.axvspan(span[0], span[1], color=_GAP_COLOUR, alpha=0.2, linewidth=0,
                       label=None if "gap" in labelled or ax is not rates
                       else "stream down")
        labelled.add("gap")
    rates.set_ylabel(f"frames/s ({width_label(t.bucket_ns)} buckets)")
    peak = max((max(counts) for counts in shown.values()), default=0) * per_second
    rates.set_ylim(0, peak * 1.1 if peak else 1)
    if not t.channels:
        rates.text(0.5, 0.5, "no frames received", transform=rates.transAxes,
                   ha="center", va="center")
    if latency:
        lat = panels[1]
        centres = (edges[:-1] + edges[1:]) / 2
        values = []
        for name in latency:
            p50, p99 = (np.array([np.nan if v is None else v for v in column])
                        for column in zip(*t.percentiles(name, (0.5, 0.99))))
            values += [p50, p99]
            colour = f"C{list(shown).index(name) % 10}"
            lat.plot(centres, p50, color=colour, linewidth=1.2, marker=".", markersize=3,
                     label=f"{name} p50")
            lat.plot(centres, p99, color=colour, linewidth=1, linestyle="--",
                     label=f"{name} p99")
        seen = np.concatenate(values)
        if np.nanmin(seen) > 0:
            from matplotlib.ticker import LogFormatter
            lat.set_yscale("log")   # plain numbers on its ticks (7, 8, 9, 10 ms), not 9x10^0
            lat.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
            lat.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False,
                                                       minor_thresholds=(2, 0.5)))
        lat.set_ylabel("receive latency (ms)")
        lat.legend(loc="upper left", fontsize="small", ncols=min(4, 2 * len(latency)))
    if t.buckets:
        rates.set_xlim(edges[0], edges[-1])
    locator = dates.AutoDateLocator()
    panels[-1].xaxis.set_major_locator(locator)
    panels[-1].xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
    panels[-1].set_xlabel("time (UTC)")
    if rates.get_legend_handles_labels()[0]:
        rates.legend(loc="upper left", fontsize="small", ncols=3)
    fig.suptitle(title)
    try:
        with warnings.catch_warnings():   # a small picture: the layout gives up, quietly
            warnings.simplefilter("ignore", UserWarning)
            fig.savefig(Path(output), format="png", dpi=_DPI)
    except OSError as exc:
        raise WsrecError(f"cannot write {output}: {exc.strerror or exc}") from None
