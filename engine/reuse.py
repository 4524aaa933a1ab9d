"""What each tile of a fused group computes, copies in and saves for its neighbours, per reuse mode.

- ``none``: every tile computes its whole receptive region at every layer; overlaps are recomputed.
- ``checkerboard`` (DeepThings): tiles whose row + col is even are independent: they compute everything
  and save the parts of their regions that their four neighbours need. The odd (dependent) tiles copy
  those parts in and compute only the rest. A dependent row runs right after the independent row below
  it, so saved strips live for about one row of tiles.
- ``stream``: tiles in raster order. At every layer the output map is cut into cells by walking the
  tiles' receptive-field ends back from the output grid; each tile computes only its own cell and takes
  the rest of its input from the strip its left neighbour saved and the strip the tile above saved.
  No element of any layer is computed twice.

Regions are absolute (y0, y1, x0, x1) in the coordinates of the layer's output map.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.network import Layer
from engine.tiling import Region, balanced_split, input_span

REUSE_MODES = ("none", "checkerboard", "stream")

Span = tuple[int, int]


@dataclass(frozen=True)
class Transfer:
    """A strip copied out of one tile's region (a save) or into another's (a fill)."""
    strip: tuple[int, int, str]  # (producing tile, layer, side): names the strip within the group
    region: Region


@dataclass(frozen=True)
class LayerWork:
    layer: int
    held: Region | None             # what the tile assembles of this layer's output; None: the group's
                                    # last layer, whose cells go straight into the output map
    computes: tuple[Region, ...]    # parts it computes (from the previous layer's held region)
    fills: tuple[Transfer, ...]     # parts it copies from strips saved by earlier tiles
    saves: tuple[Transfer, ...]     # strips it saves for later tiles


@dataclass(frozen=True)
class TileWork:
    index: int  # row-major
    row: int
    col: int
    layers: tuple[LayerWork, ...]


def _box(rows: Span, cols: Span) -> Region | None:
    if rows[0] >= rows[1] or cols[0] >= cols[1]:
        return None
    return rows[0], rows[1], cols[0], cols[1]


def _needed(layers: tuple[Layer, ...], parts: int, axis: int) -> list[list[Span]]:
    """[j][r]: the span of layer j's output that output part r needs (receptive field walked back)."""
    spans = [balanced_split(layers[-1].out_shape[1 + axis], parts)]
    for layer in reversed(layers[1:]):
        n_in = layer.in_shape[1 + axis]
        spans.append([input_span(layer, a, b, n_in)[:2] for a, b in spans[-1]])
    return spans[::-1]


def _cells(layers: tuple[Layer, ...], parts: int, axis: int) -> tuple[list[list[int]], list[list[int]]]:
    """Stream geometry along one axis: ([j] cell boundaries of layer j's output, parts + 1 of them;
    [j][r] where part r's held span starts: the first row its next layer's cell reads)."""
    last = [0] + [b for _, b in balanced_split(layers[-1].out_shape[1 + axis], parts)]
    bounds, starts = [last], [last[:-1]]  # the last layer's held span is unused: its cells go to the map
    for layer in reversed(layers[1:]):
        n_in = layer.in_shape[1 + axis]
        cells, edges, first = bounds[-1], [0], []
        for r in range(parts):
            if cells[r] == cells[r + 1]:
                i0 = i1 = edges[-1]
            else:
                i0, i1, _ = input_span(layer, cells[r], cells[r + 1], n_in)
            first.append(min(i0, edges[-1]))
            edges.append(max(i1, edges[-1]))
        bounds.append(edges)
        starts.append(first)
    return bounds[::-1], starts[::-1]


def group_work(layers: tuple[Layer, ...], rows: int, cols: int, mode: str) -> list[TileWork]:
    """Every tile's work in execution order."""
    if mode == "stream":
        return _stream(layers, rows, cols)
    if mode == "checkerboard":
        return _checkerboard(layers, rows, cols)
    if mode == "none":
        return _independent(layers, rows, cols)
    raise ValueError(f"reuse mode {mode!r}: expected one of {', '.join(REUSE_MODES)}")


def _independent(layers, rows, cols) -> list[TileWork]:
    ys, xs = _needed(layers, rows, 0), _needed(layers, cols, 1)
    work = []
    for r in range(rows):
        for c in range(cols):
            per_layer = []
            for j, layer in enumerate(layers):
                box = _box(ys[j][r], xs[j][c])
                held = None if j == len(layers) - 1 else box
                per_layer.append(LayerWork(layer.index, held, (box,), (), ()))
            work.append(TileWork(r * cols + c, r, c, tuple(per_layer)))
    return work


def _checkerboard(layers, rows, cols) -> list[TileWork]:
    ys, xs = _needed(layers, rows, 0), _needed(layers, cols, 1)
    last = len(layers) - 1
    fills: dict[tuple[int, int], list[list[Transfer]]] = {}
    computes: dict[tuple[int, int], list[tuple[Region, ...]]] = {}
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                continue
            fills[r, c], computes[r, c] = [], []
            for j, layer in enumerate(layers):
                if j == last:
                    fills[r, c].append([])
                    computes[r, c].append((_box(ys[j][r], xs[j][c]),))
                    continue
                (y0, y1), (x0, x1) = ys[j][r], xs[j][c]
                # what the neighbours hold of this region; clamped, since a stride larger than the
                # kernel leaves gaps between neighbouring regions
                top = min(max(ys[j][r - 1][1], y0), y1) if r > 0 else y0
                bottom = min(max(ys[j][r + 1][0], top), y1) if r < rows - 1 else y1
                left = min(max(xs[j][c - 1][1], x0), x1) if c > 0 else x0
                right = min(max(xs[j][c + 1][0], left), x1) if c < cols - 1 else x1
                parts = [((r - 1, c), (y0, top), (x0, x1)), ((r + 1, c), (bottom, y1), (x0, x1)),
                         ((r, c - 1), (top, bottom), (x0, left)), ((r, c + 1), (top, bottom), (right, x1))]
                fills[r, c].append([Transfer(((n[0] * cols + n[1]), layer.index, f"for{r * cols + c}"), box)
                                    for n, ry, rx in parts if (box := _box(ry, rx)) is not None])
                middle = _box((top, bottom), (left, right))
                computes[r, c].append(() if middle is None else (middle,))

    def independent(r, c) -> TileWork:
        per_layer = []
        for j, layer in enumerate(layers):
            box = _box(ys[j][r], xs[j][c])
            saves = tuple(t for n in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)) if n in fills
                          for t in fills[n][j] if t.strip[0] == r * cols + c)
            per_layer.append(LayerWork(layer.index, None if j == last else box, (box,), (), saves))
        return TileWork(r * cols + c, r, c, tuple(per_layer))

    def dependent(r, c) -> TileWork:
        per_layer = tuple(LayerWork(layer.index, None if j == last else _box(ys[j][r], xs[j][c]),
                                    computes[r, c][j], tuple(fills[r, c][j]), ())
                          for j, layer in enumerate(layers))
        return TileWork(r * cols + c, r, c, per_layer)

    # independent row r, then dependent row r - 1, whose neighbours below have just run
    order = []
    for r in range(rows + 1):
        if r < rows:
            order += [independent(r, c) for c in range(cols) if (r + c) % 2 == 0]
        if r > 0:
            order += [dependent(r - 1, c) for c in range(cols) if (r - 1 + c) % 2 == 1]
    return order


def _stream(layers, rows, cols) -> list[TileWork]:
    (yb, ys), (xb, xs) = _cells(layers, rows, 0), _cells(layers, cols, 1)
    last = len(layers) - 1
    work = []
    for r in range(rows):
        for c in range(cols):
            t = r * cols + c
            per_layer = []
            for j, layer in enumerate(layers):
                cell = _box((yb[j][r], yb[j][r + 1]), (xb[j][c], xb[j][c + 1]))
                computes = () if cell is None else (cell,)
                if j == last:
                    per_layer.append(LayerWork(layer.index, None, computes, (), ()))
                    continue
                held_rows, held_cols = (ys[j][r], yb[j][r + 1]), (xs[j][c], xb[j][c + 1])
                fills = []
                if (box := _box(held_rows, (xs[j][c], xb[j][c]))) is not None:
                    fills.append(Transfer((t - 1, layer.index, "right"), box))
                if (box := _box((ys[j][r], yb[j][r]), (xb[j][c], xb[j][c + 1]))) is not None:
                    fills.append(Transfer((t - cols, layer.index, "down"), box))
                saves = []
                if c < cols - 1 and (box := _box(held_rows, (xs[j][c + 1], xb[j][c + 1]))) is not None:
                    saves.append(Transfer((t, layer.index, "right"), box))
                if r < rows - 1 and (box := _box((ys[j][r + 1], yb[j][r + 1]), (xb[j][c], xb[j][c + 1]))) is not None:
                    saves.append(Transfer((t, layer.index, "down"), box))
                per_layer.append(LayerWork(layer.index, _box(held_rows, held_cols), computes, tuple(fills),
                                           tuple(saves)))
            work.append(TileWork(t, r, c, tuple(per_layer)))
    return work
