"""Plans: which consecutive layers are fused into groups, and each group's grid.

Layers outside every group run layer by layer. A spec string reads "0-7:4x4,8-16:2x2" (inclusive
Darknet layer indices, rows x cols); "8-11:13x1:stream@1024" also gives the group's conv workspace budget
in KiB.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from engine.ir.fusion import fusion
from engine.ir.order import ORDERS
from yolo.errors import FusetileError
from yolo.network import Conv, MaxPool, Network

REUSE_MODES = ("none", "checkerboard", "stream", "columns")
WEIGHT_MODES = ("resident", "group", "tile")  # a group's conv weights: outside the arena; in it for the group's
# whole run; or loaded again for each tile (and each band of input channels) and released after it


class PlanError(FusetileError):
    """A fusing/tiling configuration that cannot run on the network."""


@dataclass(frozen=True)
class Group:
    first: int
    last: int
    rows: int = 1
    cols: int = 1
    reuse: str = "none"  # one of REUSE_MODES
    weights: str = "resident"  # one of WEIGHT_MODES
    bands: int = 1  # each conv step split into this many bands of input channels (each loaded alone in "tile"
    # mode, the band's steps accumulating into the output region)
    scratch_bytes: int = 0  # the workspace budget of each of the group's conv steps (0: the plan's). A budget
    # is a trade within one plan: under yolov2's tightest peaks only the 13-wide layers need a small one

    @property
    def layers(self) -> range:
        return range(self.first, self.last + 1)

    def __str__(self) -> str:
        held = "" if self.weights == "resident" and self.bands == 1 else \
            f":{self.weights}" + (f"/{self.bands}" if self.bands > 1 else "")
        workspace = f"@{self.scratch_bytes // 1024}" if self.scratch_bytes else ""
        return f"{self.first}-{self.last}:{self.rows}x{self.cols}:{self.reuse}{held}{workspace}"


DEFAULT_BAND_BYTES = 2 << 20  # streamed weights of a layer outside groups are read in bands of at most this
MAX_SCRATCH_BYTES = 1 << 40  # a conv workspace budget past this is a typo (and would overflow the lowering)


@dataclass(frozen=True)
class Plan:
    network: Network
    groups: tuple[Group, ...]
    weights: str = "resident"  # or "streamed": layers outside groups load their weights, in bands
    band_bytes: int = DEFAULT_BAND_BYTES
    order: str = "darknet"  # one of ORDERS: whether heads' branches run where Darknet runs them or last

    def __post_init__(self):
        if self.order not in ORDERS:
            raise PlanError(f"order {self.order!r}: expected one of {', '.join(ORDERS)}")
        validate(self.network, self.groups)
        if self.weights not in ("resident", "streamed"):
            raise PlanError(f"weights {self.weights!r}: expected resident or streamed")

    def outside_group(self, index: int) -> Group:
        """The one-layer group a tileable layer outside every group runs as: 1x1; streamed, its input channels
        in bands whose weights take at most ``band_bytes`` each (the layer's vectors come with the last)."""
        if self.weights == "resident":
            return Group(index, index, 1, 1)
        layer = self.network[index]
        if not isinstance(layer, Conv):
            return Group(index, index, 1, 1, "none", "tile")
        channels = layer.in_shape[0] // layer.groups
        per_channel = layer.filters * layer.size ** 2 * 4
        bands = min(channels, max(1, -(-(channels * per_channel + 16 * layer.filters) // self.band_bytes)))
        return Group(index, index, 1, 1, "none", "tile", bands)

    @property
    def spec(self) -> str:
        return ",".join(str(g) for g in self.groups)

    def __repr__(self) -> str:
        shown = "" if self.order == "darknet" else f", {self.order}"
        return f"Plan({self.network.name}, {self.spec or 'layer by layer'}{shown})"


def validate(network: Network, groups: tuple[Group, ...]) -> None:
    n = len(network)
    previous_last = -1
    for g in groups:
        if g.first > g.last:
            raise PlanError(f"group {g}: layers {g.first}-{g.last} are reversed: FIRST-LAST with FIRST <= LAST, "
                            f"e.g. {g.last}-{g.first}")
        if not 0 <= g.first <= g.last < n:
            raise PlanError(f"group {g}: layers {g.first}-{g.last} out of range: {network.name} has layers 0-{n - 1}")
        if g.first <= previous_last:
            raise PlanError(f"group {g} overlaps or precedes the group ending at layer {previous_last}: "
                            f"groups must be disjoint and in layer order")
        previous_last = g.last
        rule = fusion(network)
        why = rule.why_not(g.first, g.last)
        if why is not None:
            raise PlanError(f"group {g}: {why} (valid spans: {', '.join(fusable_spans(network))})")
        if g.weights not in WEIGHT_MODES:
            raise PlanError(f"group {g}: weights {g.weights!r}: expected one of {', '.join(WEIGHT_MODES)}")
        if g.bands < 1 or (g.bands > 1 and g.weights == "group"):
            raise PlanError(f"group {g}: {g.bands} bands: expected at least 1, and 1 when a group keeps its "
                            f"weights for its whole run")
        fewest = min((network[i].in_shape[0] for i in g.layers if isinstance(network[i], Conv)), default=g.bands)
        if g.bands > fewest:
            raise PlanError(f"group {g}: {g.bands} bands of input channels, but a conv layer of the group reads "
                            f"{fewest}")
        if g.reuse not in REUSE_MODES:
            raise PlanError(f"group {g}: reuse mode {g.reuse!r}: expected one of {', '.join(REUSE_MODES)}")
        if not 0 <= g.scratch_bytes <= MAX_SCRATCH_BYTES or g.scratch_bytes % 1024:
            raise PlanError(f"group {g}: workspace of {g.scratch_bytes} bytes: expected whole KiB up to 1 TiB "
                            f"(@KIB, e.g. @512)")
        if g.rows < 1 or g.cols < 1:
            raise PlanError(f"group {g}: grid {g.rows}x{g.cols}: expected at least 1x1")
        _, h, w = network[g.last].out_shape
        if g.rows > h or g.cols > w:
            raise PlanError(f"group {g}: grid {g.rows}x{g.cols} exceeds the group's {h}x{w} output map; "
                            f"at most {h}x{w}")


def fusable_spans(network: Network) -> list[str]:
    """Maximal runs of layers that could form one group, as 'a-b' strings (for error messages)."""
    return [f"{a}-{b}" for a, b in fusion(network).spans()]


GROUP_RE = re.compile(r"^(\d+)-(\d+):(\d+)x(\d+)(?::(\w+))?(?::(\w+)(?:/(\d+))?)?(?:@(\d+))?$")


def parse_grid(text: str, what: str = "--tiles") -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise PlanError(f"{what} {text!r}: expected ROWSxCOLS such as 3x3 or 2x4")
    return int(m[1]), int(m[2])


def check_reuse(mode: str, what: str = "--reuse") -> str:
    if mode not in REUSE_MODES:
        raise PlanError(f"{what}: reuse mode {mode!r}: expected one of {', '.join(REUSE_MODES)}")
    return mode


def parse_groups(spec: str, reuse: str = "none", weights: str = "resident") -> tuple[Group, ...]:
    """'0-7:4x4:stream,8-16:2x2' -> groups (``reuse`` where a group names no mode); 'none' or '': no group
    (every layer runs layer by layer, in the arena)."""
    if spec.strip() == "none":
        return ()
    groups = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        m = GROUP_RE.match(part)
        if not m:
            raise PlanError(f"--groups {part!r}: expected FIRST-LAST:ROWSxCOLS[:REUSE[:WEIGHTS[/BANDS]]][@KIB] such "
                            f"as 0-7:4x4, 0-7:4x4:stream, 30-30:1x1:none:tile/4 or 8-11:13x1:stream@1024")
        mode = check_reuse(m[5] or reuse, f"--groups {part!r}")
        if m[8] is not None and int(m[8]) < 1:
            raise PlanError(f"--groups {part!r}: workspace @{m[8]}: expected at least 1 KiB")
        groups.append(Group(int(m[1]), int(m[2]), int(m[3]), int(m[4]), mode, m[6] or weights,
                            int(m[7] or 1), int(m[8] or 0) * 1024))
    return tuple(groups)


def stride_at(network: Network) -> list[int]:
    """Output stride of every layer along the main chain (1 = input resolution)."""
    _, h, _ = network.input_shape
    return [max(h // l.out_shape[1], 1) for l in network.layers]


def plain_ends(network: Network, first: int) -> list[int]:
    """Where a group of conv and maxpool layers only (no shortcut, route or upsample) from ``first`` may end:
    the default plan's groups, whose overlap stays small without a search."""
    rule = fusion(network)
    return [q for q in rule.ends(first) if all(rule.alone[i] for i in range(first, q + 1))]


def default_span(network: Network) -> tuple[int, int]:
    """The memory-heavy early chain: from layer 0 to the last chain layer at stride <= 16."""
    strides = stride_at(network)
    ends = [i for i in plain_ends(network, 0) if strides[i] <= 16]
    return 0, ends[-1] if ends else 0


FINE, COARSE = (8, 1), (4, 1)  # the default groups' grids (rows x columns): strips of whole rows


def default_groups(network: Network, tiles: tuple[int, int] | None = None, reuse: str = "none",
                   weights: str = "resident") -> tuple[Group, ...]:
    """With ``tiles``: one group over the default span. Without: two groups split after the pool that
    reaches stride 8, finely tiled early, coarsely late (Farley & Gerstlauer's shape); then, in a network
    whose residual or route structure cuts chains short (MobileNetV2's blocks), every further chain of two
    or more layers ending at stride <= 8, coarsely. The tiles are strips of whole rows (FINE, COARSE): rows
    stay contiguous, so convs pack whole planes at a time, 1x1 convs multiply in place and Winograd's bands
    are wide. Against 4x4 and 2x2 grids, about the same peak (yolov2 5.09 against 5.23 MiB, tiny 2.51 against
    2.39) and faster: yolov2 by 10%, tiny 11%, Nano COCO 26%. With ``columns`` reuse, two columns of strips.
    The default plan keeps only as much of these groups as lowers the peak (``engine.cli.planning.default_plan``)."""
    first, last = default_span(network)
    if tiles is not None:
        return (Group(first, last, *tiles, reuse, weights),)
    fine, coarse = ((FINE[0], 2), (COARSE[0], 2)) if reuse == "columns" else (FINE, COARSE)  # one would stream
    strides = stride_at(network)
    cut = max((i for i in range(first, last) if strides[i] <= 8 and isinstance(network[i], MaxPool)), default=None)
    if cut is None:
        groups = (Group(first, last, *coarse, reuse, weights),)
    else:
        groups = (Group(first, cut, *fine, reuse, weights), Group(cut + 1, last, *coarse, reuse, weights))
    if cut is None and last > first and strides[last] <= 4:
        groups = (Group(first, last, *fine, reuse, weights),)
    later, a = [], last + 1
    while a < len(network):
        b = max(plain_ends(network, a), default=a)
        if b > a and strides[b] <= 8:
            later.append(Group(a, b, *coarse, reuse, weights))
        a = b + 1
    return tuple(g for g in groups if g.first <= g.last) + tuple(later)
