"""Pieces of the JSON report whose keys a test pins."""
from __future__ import annotations


def process_memory(args, weights: int, arena: int | None) -> dict:
    """The whole-process estimate (weights + arena + measured runtime baseline; fused mode) beside this
    process's resident peak."""
    from engine.runtime.baseline import resident_high_water, runtime_baseline_bytes
    baseline = runtime_baseline_bytes()
    estimate = {} if arena is None else {"predicted_process_bytes": weights + arena + baseline}
    return {"runtime_baseline_bytes": baseline, **estimate, "measured_process_peak_bytes": resident_high_water()}


def search_report(args, searched) -> dict:
    if searched is None:
        return {}
    choice, budget, how, max_grid = searched
    return {"budget_bytes": budget,
            "search": {"predicted_seconds": round(choice.predicted_seconds, 6),
                       "predicted_peak_bytes": choice.predicted_peak_bytes, "max_grid": max_grid,
                       "chosen": how,
                       "model": "latency: calibrated per-step linear cost model; peak: exact predictor"}}
