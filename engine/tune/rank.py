"""The order the search ranks configurations in: predicted time, with a handicap for what the model cannot
price, then peak, then plainness."""
from __future__ import annotations

from engine.ir.plan import Group

PLAINER_BY = 10e-6  # predicted seconds a group, or a group's own workspace budget, must save to be chosen


def rank(seconds: float, peak: int, groups: tuple[Group, ...]) -> tuple:
    """Faster first, by more than PLAINER_BY for each group and each group's own workspace budget a plan
    has beyond another's (``handicap``); then smaller, then fewer groups, then fewer tile columns, then fewer
    budgets.

    Exact ties broke on rounding: yolov2's pick at the median peak of bench_search's sweep was 9 groups, 6
    with budgets of their own, over 3 groups (1 budget) whose predicted time differed in its 17th digit, the
    same counts summed in another order; the 3 ran 0.994x the 9's time (16 rounds in turns). Tiles in
    columns cost what the same tiles in rows cost by every count the model has, but every kernel runs whole
    rows fastest: under 1/8 of yolov2-tiny's peak, its layers 8-9 in four strips ran 1.8-2.7% faster than in
    four columns, which the search had picked, first of the two it could not tell apart (one process, in
    turns)."""
    return (seconds + handicap(groups), peak, len(groups), columns(groups), sum(1 for g in groups if g.scratch_bytes))


def handicap(groups: tuple[Group, ...]) -> float:
    """PLAINER_BY for each group and each group's own workspace budget."""
    return PLAINER_BY * sum(1 + (g.scratch_bytes > 0) for g in groups)


def columns(groups: tuple[Group, ...]) -> int:
    """The tile columns of a plan's groups."""
    return sum(g.cols for g in groups)
