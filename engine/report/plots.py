"""Pictures of memory and latency: every function draws on a matplotlib Axes (a new figure if none is
given) and returns the Axes. Sizes are in MiB."""
from __future__ import annotations

import numpy as np

from yolo.network import Network, nbytes
from engine.ir.plan import REUSE_MODES, Group

MIB = 2 ** 20


def _axes(ax, size=(8, 3.5)):
    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def layer_profile(network: Network, groups: tuple[Group, ...] = (), ax=None):
    """Activation memory each layer needs when run layer by layer (its inputs + output), the groups shaded
    and the peak marked: the imbalance that makes the early layers worth fusing."""
    ax = _axes(ax)
    need = [(sum(nbytes(network.shape_of(s)) for s in l.inputs) + nbytes(l.out_shape)) / MIB for l in network.layers]
    ax.bar(range(len(need)), need, color="tab:blue", label="inputs + output")
    for g in groups:
        ax.axvspan(g.first - 0.5, g.last + 0.5, color="tab:orange", alpha=0.2)
        ax.text((g.first + g.last) / 2, max(need) * 0.95, f"{g.rows}x{g.cols}\n{g.reuse}", ha="center", va="top",
                fontsize=8)
    peak = int(np.argmax(need))
    ax.annotate(f"peak {need[peak]:.1f} MiB", (peak, need[peak]), xytext=(peak + 2, need[peak] * 0.8),
                arrowprops={"arrowstyle": "->"})
    ax.set(xlabel="layer", ylabel="MiB", title=f"{network.name}: activation memory per layer (groups shaded)")
    ax.legend(loc="upper right")
    return ax


def live_timeline(measured, predicted=None, ax=None, label: str = ""):
    """Live bytes per step of a run, the predictor's timeline overlaid."""
    ax = _axes(ax)
    ax.plot(np.asarray(measured) / MIB, label=f"measured {label}".strip(), lw=1.5)
    if predicted is not None:
        ax.plot(np.asarray(predicted) / MIB, "--", label="predicted", lw=1)
    ax.set(xlabel="step", ylabel="live MiB", title="live activation bytes during the run")
    ax.legend()
    return ax


def arena_map(program, layout, ax=None):
    """Each buffer as a rectangle: its lifetime (steps) by its address range in the arena."""
    from matplotlib.patches import Rectangle
    from engine.lower.table import BUFFER_KINDS, B_BYTES, B_FIRST, B_KIND, B_LAST
    ax = _axes(ax, (8, 4.5))
    colours = {"input": "tab:red", "map": "tab:blue", "tile": "tab:green", "strip": "tab:purple",
               "scratch": "tab:gray"}
    for (size, kind, first, last), offset in zip(program.buffers[:, [B_BYTES, B_KIND, B_FIRST, B_LAST]].tolist(),
                                                 layout.offsets.tolist()):
        ax.add_patch(Rectangle((first, offset / MIB), last - first + 1, size / MIB,
                               color=colours[BUFFER_KINDS[kind]], alpha=0.6, lw=0))
    for kind, colour in colours.items():
        ax.add_patch(Rectangle((0, 0), 0, 0, color=colour, label=kind))
    ax.set(xlim=(0, len(program.steps)), ylim=(0, layout.size / MIB), xlabel="step", ylabel="arena address (MiB)",
           title=f"arena layout: {layout.size / MIB:.2f} MiB")
    ax.legend(loc="upper right", fontsize=8)
    return ax


def peak_vs_grid(predictor, spans: list[tuple[int, int]], grids: list[int], reuse: str = "stream", ax=None):
    """Predicted peak of one-group plans as the square grid grows, one line per cut."""
    ax = _axes(ax)
    for first, last in spans:
        _, h, w = predictor.network[last].out_shape
        ns = [n for n in grids if n <= min(h, w)]
        peaks = [predictor.predict((Group(first, last, n, n, reuse),)).peak_bytes / MIB for n in ns]
        ax.plot(ns, peaks, marker="o", label=f"layers {first}-{last}")
    ax.set(xlabel="grid (n x n)", ylabel="peak MiB", title=f"predicted peak vs grid ({reuse})")
    ax.legend()
    return ax


def overhead_vs_grid(network: Network, first: int, last: int, grids: list[int], predictor, ax=None):
    """Executed / network multiply-accumulates of the group as the grid grows, per reuse mode."""
    ax = _axes(ax)
    ideal = sum(network[i].macs for i in range(first, last + 1))
    for mode in REUSE_MODES:
        ax.plot(grids, [predictor.lowering.lower(Group(first, last, n, n, mode)).macs / ideal for n in grids],
                marker="o", label=mode)
    ax.set(xlabel="grid (n x n)", ylabel="MACs executed / network", title=f"overlap work, layers {first}-{last}")
    ax.legend()
    return ax


def pareto(points: list[tuple[int, float]], ax=None, label: str = "searched"):
    """Peak memory vs predicted latency of configurations, the frontier (fastest at each budget) drawn."""
    ax = _axes(ax)
    pts = sorted(points)
    ax.scatter([p / MIB for p, _ in pts], [s * 1e3 for _, s in pts], s=12, alpha=0.5, label=label)
    frontier, best = [], float("inf")
    for peak, seconds in pts:
        if seconds < best:
            best = seconds
            frontier.append((peak, seconds))
    ax.step([p / MIB for p, _ in frontier], [s * 1e3 for _, s in frontier], where="post", color="tab:red",
            label="frontier")
    ax.set(xlabel="peak MiB", ylabel="predicted ms", title="peak memory vs predicted latency")
    ax.legend()
    return ax


def latency_vs_memory(points, ax=None):
    """Modelled latency against device memory (device_curves.CurvePoint list): layer by layer against the
    best searched configurations, resident and (if modelled) streamed weights; log scale, since paging
    costs orders of magnitude more than compute."""
    ax = _axes(ax)
    memory = [p.memory_bytes / MIB for p in points]
    ax.plot(memory, [p.layer_by_layer.seconds for p in points], "o-", label="layer by layer")
    ax.plot(memory, [p.searched.seconds for p in points], "s-", label="searched, resident weights")
    if all(p.streamed is not None for p in points):
        ax.plot(memory, [p.streamed.seconds for p in points], "^-", label="searched, streamed weights")
    ax.set_yscale("log")
    ax.set(xlabel="device memory MiB (runtime and weights included)", ylabel="modelled seconds",
           title="latency vs device memory (paging model)")
    ax.legend()
    return ax


def save(ax, path, outputs=None) -> None:
    """Writes the Axes' figure as PNG, whole or not at all (as one of ``outputs``' set if given), then
    closes it."""
    import matplotlib.pyplot as plt

    from yolo.files import Outputs
    if outputs is None:
        with Outputs() as alone:
            alone.write(path, "plot", lambda tmp: ax.figure.savefig(tmp, format="png", dpi=110))
    else:
        outputs.write(path, "--plot", lambda tmp: ax.figure.savefig(tmp, format="png", dpi=110))
    plt.close(ax.figure)
