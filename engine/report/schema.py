"""Pieces of the JSON report whose keys a test pins."""
from __future__ import annotations


def process_memory(process) -> dict:
    """The whole-process prediction (``guard.ProcessBytes``) beside this process's resident peak."""
    from engine.runtime.baseline import resident_high_water
    return {"runtime_baseline_bytes": process.baseline, "predicted_process_bytes": process.total,
            "measured_process_peak_bytes": resident_high_water()}


def search_report(args, searched) -> dict:
    if searched is None:
        return {}
    choice, budget, how, max_grid = searched
    return {"budget_bytes": budget,
            "search": {"predicted_seconds": round(choice.predicted_seconds, 6),
                       "predicted_peak_bytes": choice.predicted_peak_bytes, "max_grid": max_grid,
                       "chosen": how,
                       "model": "latency: calibrated per-step linear cost model; peak: exact predictor"}}
