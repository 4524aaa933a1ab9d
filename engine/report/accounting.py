"""Per-group figures of a fused run: live bytes at the group's peak (and how much of it is saved strips),
and the multiply-accumulates each layer really executed against the network's own count."""
from __future__ import annotations

import numpy as np

from engine.ir.plan import Group
from engine.lower.program import Program
from engine.lower.table import B_BYTES, B_FIRST, B_KIND, B_LAST, B_SEGMENT, STRIP_BUFFER, S_LAYER, S_MACS, S_SEGMENT
from engine.memory.timeline import live_bytes


def group_dict(group: Group) -> dict:
    """A group as the JSON report gives it (``scratch_bytes`` 0: the run's workspace budget); ``group_of``
    reads it back."""
    return {"layers": [group.first, group.last], "grid": [group.rows, group.cols], "reuse": group.reuse,
            "weights": group.weights, "bands": group.bands, "scratch_bytes": group.scratch_bytes}


def group_of(entry: dict) -> Group:
    return Group(*entry["layers"], *entry["grid"], entry["reuse"], entry["weights"], entry["bands"],
                 entry["scratch_bytes"])


def _user_groups(program: Program) -> list[tuple[int, Group]]:
    """The plan's own groups (not the one-layer groups of layers run layer by layer), with their index."""
    user = set(program.plan.groups)
    return [(gi, g) for gi, g in enumerate(program.groups) if g in user]


def group_memory(program: Program, measured: tuple[int, ...]) -> list[dict]:
    """Each group's peak of measured live bytes over its steps, and the strip bytes live at that step."""
    report = []
    b = program.buffers
    for gi, group in _user_groups(program):
        steps = np.flatnonzero(program.steps[:, S_SEGMENT] == gi)
        peak_step = int(steps[np.argmax(np.asarray(measured)[steps])])
        strips = b[(b[:, B_KIND] == STRIP_BUFFER) & (b[:, B_SEGMENT] == gi)]
        strip_live = live_bytes(strips[:, B_BYTES], strips[:, B_FIRST], strips[:, B_LAST], len(program.steps))
        report.append(group_dict(group) | {"peak_bytes": measured[peak_step],
                                           "strip_bytes_at_peak": int(strip_live[peak_step]),
                                           "max_strip_bytes": int(strip_live[steps].max(initial=0))})
    return report


def group_macs(program: Program) -> list[dict]:
    network = program.network
    report = []
    for gi, group in _user_groups(program):
        rows = program.steps[program.steps[:, S_SEGMENT] == gi]
        executed = {i: int(rows[rows[:, S_LAYER] == i, S_MACS].sum()) for i in group.layers}
        total, ideal = sum(executed.values()), sum(network[i].macs for i in group.layers)
        report.append(group_dict(group) | {
            "network": ideal, "executed": total, "overhead": round(total / ideal, 6) if ideal else 1.0,
            "per_layer": [{"layer": i, "network": network[i].macs, "executed": executed[i]} for i in group.layers]})
    return report
