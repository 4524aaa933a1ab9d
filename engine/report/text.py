"""The run's report as text for a person (the JSON's figures, in Darknet's style where it has one)."""
from __future__ import annotations

from engine.report.accounting import group_of


def print_human(report: dict, thresh: float) -> None:
    cfg = report["config"]
    w, h = cfg["size"]
    print(f"{cfg['cfg']} {w}x{h}, {cfg['mode']} mode, weights {cfg['weights']}, image {cfg['image']}")
    for d in report["detections"]:
        print(f"{d['class']}: {d['confidence'] * 100:.0f}%")
    if not report["detections"]:
        print(f"no detections above {thresh:.2f}")
    mem, macs = report["memory"], report["macs"]
    runs = len(report["latencies_s"])
    timed = f"median of {runs} runs" if runs > 1 else "one run after a warm-up"
    if report["runs_alone"]:
        timed += f", {report['runs_alone']} of them on one thread: the cores were busy"
    print(f"latency: {report['latency_s'] * 1e3:.1f} ms, {timed} ({macs['network'] / 1e9:.2f} GMAC, "
          f"{macs['overhead']:.3f}x executed)")
    groups = ", ".join(str(group_of(g)) for g in report["config"]["groups"]) or "none"
    groups += "" if report["config"]["order"] == "darknet" else f", {report['config']['order']}"
    print(f"peak activation memory: {mem['measured_peak_bytes'] / 2**20:.2f} MiB measured "
          f"({cfg['mode']}, groups {groups}) vs {mem['layer_by_layer_peak_bytes'] / 2**20:.2f} MiB layer by layer; "
          f"weights {mem['weights_bytes'] / 2**20:.1f} MiB (not counted)")
    if "budget_bytes" in cfg:
        search = cfg["search"]
        print(f"budget {cfg['budget_bytes'] / 2**20:.2f} MiB ({cfg['budget_bytes']:,} B): chose {groups} "
              f"({search['chosen']}); peak {search['predicted_peak_bytes'] / 2**20:.2f} MiB predicted, "
              f"{mem['measured_peak_bytes'] / 2**20:.2f} MiB measured")
    if "device" in report:
        dev = report["device"]
        print(f"device model ({dev['device']}, {dev['device_memory_bytes'] / 2**20:.0f} MiB, a model): "
              f"{dev['swap_ins']} swap-ins and {dev['swap_outs']} swap-outs per inference, "
              f"{dev['paging_seconds']:.2f} s paging; modelled latency {dev['modelled_latency_s']:.2f} s "
              f"vs {report['latency_s']:.2f} s measured here")
    print(f"picture written to {report['outputs']['picture']}")
    if report["outputs"]["raw_output"]:
        print(f"raw output written to {report['outputs']['raw_output']}")
    if report["outputs"]["plots"]:
        names = "profile.png, timeline.png" + ("" if cfg["mode"] == "reference" else ", arena.png")
        print(f"plots written to {report['outputs']['plots']}: {names}")
