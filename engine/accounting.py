"""Per-group figures of a fused run: live bytes at the group's peak (and how much of it is saved strips),
and the multiply-accumulates each layer really executed against the network's own count."""
from __future__ import annotations

from engine.plan import Group
from engine.schedule import Schedule


def group_dict(group: Group) -> dict:
    return {"layers": [group.first, group.last], "grid": [group.rows, group.cols], "reuse": group.reuse}


def _user_groups(schedule: Schedule) -> list[tuple[int, Group]]:
    """The plan's own groups (not the one-layer groups of layers run layer by layer), with their index."""
    user = set(schedule.plan.groups)
    return [(gi, g) for gi, g in enumerate(schedule.groups) if g in user]


def group_memory(schedule: Schedule, live_bytes: tuple[int, ...]) -> list[dict]:
    """Each group's peak of live bytes over its steps, and the strip bytes live at that step."""
    report = []
    for gi, group in _user_groups(schedule):
        steps = [s.index for s in schedule.steps if s.group == gi]
        peak_step = max(steps, key=lambda i: live_bytes[i])
        strips = [b for b in schedule.buffers if b.kind == "strip" and b.segment == gi]
        at = lambda i: sum(b.nbytes for b in strips if b.first_step <= i <= b.last_step)
        report.append(group_dict(group) | {"peak_bytes": live_bytes[peak_step], "strip_bytes_at_peak": at(peak_step),
                                           "max_strip_bytes": max((at(i) for i in steps), default=0)})
    return report


def group_macs(schedule: Schedule) -> list[dict]:
    network = schedule.plan.network
    report = []
    for gi, group in _user_groups(schedule):
        executed = {i: 0 for i in group.layers}
        for step in schedule.steps:
            if step.group == gi:
                executed[step.layer] += step.macs
        total, ideal = sum(executed.values()), sum(network[i].macs for i in group.layers)
        report.append(group_dict(group) | {
            "network": ideal, "executed": total, "overhead": round(total / ideal, 6) if ideal else 1.0,
            "per_layer": [{"layer": i, "network": network[i].macs, "executed": executed[i]} for i in group.layers]})
    return report
