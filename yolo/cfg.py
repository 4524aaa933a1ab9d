"""Darknet .cfg parsing: text -> [Section] (with line numbers) -> yolo.network.Network.

Unknown sections and keys are errors; training-only keys are ignored by an explicit list, so a typo
never passes silently. Every error names the file, the line, the key and the value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from yolo.errors import CfgError
from yolo.network import (ACTIVATIONS, AvgPool, Cost, Layer, Network, Region, Softmax,
                            make_conv, make_maxpool, make_reorg, make_route)

BUNDLED_DIR = Path(__file__).parent / "data"
MAX_INPUT_PIXELS = 4096 * 4096  # a network input larger than this is surely a typo (yolov2 at 608 has 0.37M)
BUNDLED_CFGS = ("yolov2.cfg", "yolov2-tiny.cfg", "yolov2-voc.cfg", "yolov2-tiny-voc.cfg")

# Keys Darknet reads only for training (or data augmentation); accepted and ignored.
TRAINING_KEYS = {
    "net": {"batch", "subdivisions", "momentum", "decay", "angle", "saturation", "exposure", "hue",
            "learning_rate", "burn_in", "max_batches", "policy", "steps", "scales", "min_crop", "max_crop",
            "aspect", "power", "step", "gamma", "max_crop", "random", "jitter", "adam", "b1", "b2", "eps",
            "inputs", "time_steps", "notruth", "center", "clip", "subdivision"},
    "convolutional": {"flipped"},
    "maxpool": set(),
    "avgpool": set(),
    "route": set(),
    "reorg": set(),
    "region": {"bias_match", "jitter", "rescore", "object_scale", "noobject_scale", "class_scale",
               "coord_scale", "absolute", "thresh", "random", "max"},
    "softmax": set(),
    "cost": {"type", "scale", "ratio", "noobject_scale", "thresh"},
}
USED_KEYS = {
    "net": {"width", "height", "channels"},
    "convolutional": {"batch_normalize", "filters", "size", "stride", "pad", "padding", "groups", "activation"},
    "maxpool": {"size", "stride", "padding"},
    "avgpool": set(),
    "route": {"layers"},
    "reorg": {"stride"},
    "region": {"anchors", "classes", "coords", "num", "softmax"},
    "softmax": {"groups"},
    "cost": set(),
}
SECTION_ALIASES = {"network": "net", "conv": "convolutional", "max": "maxpool", "avg": "avgpool"}


@dataclass(frozen=True)
class Section:
    kind: str
    line: int
    source: str
    options: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (value, line)

    def where(self, key: str | None = None) -> str:
        line = self.options[key][1] if key in self.options else self.line
        return f"{self.source}:{line}: [{self.kind}]"

    def fail(self, key: str, expected: str) -> CfgError:
        value = self.options[key][0] if key in self.options else None
        shown = f"{key}={value}" if value is not None else f"missing {key}"
        return CfgError(f"{self.where(key)} {shown}: expected {expected}")

    def int(self, key: str, default: int | None = None, minimum: int | None = None) -> int:
        if key not in self.options:
            if default is None:
                raise self.fail(key, "an integer (required key)")
            return default
        try:
            value = int(self.options[key][0])
        except ValueError:
            raise self.fail(key, "an integer") from None
        if minimum is not None and value < minimum:
            raise self.fail(key, f"an integer >= {minimum}")
        return value

    def float_list(self, key: str) -> tuple[float, ...]:
        text = self.options.get(key, ("", 0))[0]
        try:
            return tuple(float(v) for v in text.split(",") if v != "")
        except ValueError:
            raise self.fail(key, "a comma-separated list of numbers") from None

    def int_list(self, key: str) -> tuple[int, ...]:
        if key not in self.options:
            raise self.fail(key, "a comma-separated list of layer indices (required key)")
        try:
            values = tuple(int(v) for v in self.options[key][0].split(",") if v != "")
        except ValueError:
            raise self.fail(key, "a comma-separated list of integers") from None
        if not values:
            raise self.fail(key, "at least one layer index")
        return values

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.options.get(key, (default, 0))[0]
        if value not in choices:
            raise self.fail(key, "one of " + ", ".join(choices))
        return value


def parse_sections(text: str, source: str = "<cfg>") -> list[Section]:
    """Split cfg text into sections. Whitespace inside a line is dropped, as Darknet's own reader does."""
    sections: list[Section] = []
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise CfgError(f"{source}:{number}: bad section header {raw.strip()!r}: expected [name]")
            kind = line[1:-1].lower()
            sections.append(Section(SECTION_ALIASES.get(kind, kind), number, source))
            continue
        if not sections:
            raise CfgError(f"{source}:{number}: {raw.strip()!r} appears before any [section]")
        key, eq, value = line.partition("=")
        if not eq or not key:
            raise CfgError(f"{source}:{number}: {raw.strip()!r}: expected key=value")
        section = sections[-1]
        if key in section.options:
            raise CfgError(f"{source}:{number}: [{section.kind}] {key} given twice "
                           f"(first on line {section.options[key][1]})")
        section.options[key] = (value, number)
    if not sections:
        raise CfgError(f"{source}: no sections found: expected a Darknet cfg starting with [net]")
    return sections


def _check_keys(section: Section) -> None:
    if section.kind not in USED_KEYS:
        raise CfgError(f"{section.where()} unknown section [{section.kind}]: supported are "
                       + ", ".join(f"[{k}]" for k in USED_KEYS))
    allowed = USED_KEYS[section.kind] | TRAINING_KEYS[section.kind]
    for key, (value, line) in section.options.items():
        if key not in allowed:
            raise CfgError(f"{section.source}:{line}: [{section.kind}] unknown key {key}={value}: "
                           f"expected one of {', '.join(sorted(USED_KEYS[section.kind])) or '(no keys)'}")


def build_network(sections: list[Section], name: str = "network",
                  size: tuple[int, int] | None = None) -> Network:
    """Infer every layer's shape once. ``size`` = (width, height) overrides the [net] input size."""
    net, *body = sections
    if net.kind != "net":
        raise CfgError(f"{net.where()} the first section must be [net], found [{net.kind}]")
    _check_keys(net)
    width, height = net.int("width", minimum=1), net.int("height", minimum=1)
    channels = net.int("channels", 3, minimum=1)
    if channels not in (1, 3):
        raise net.fail("channels", "1 (grayscale input) or 3 (RGB input)")
    if size is not None:
        width, height = size
    if width * height > MAX_INPUT_PIXELS:
        raise CfgError(f"{'--size' if size else net.where('width')} {width}x{height}: at most "
                       f"{MAX_INPUT_PIXELS:,} input pixels (e.g. 4096x4096)")
    input_shape = (channels, height, width)
    if not body:
        raise CfgError(f"{net.source}: the cfg has no layers after [net]")
    try:
        layers = _build_layers(body, input_shape)
    except CfgError:
        if size is not None:  # a size the network cannot take usually shows first as a map a layer cannot divide
            _check_stride(build_network(sections, name).stride, width, height, size, net)
        raise
    network = Network(name, input_shape, tuple(layers), source=sections[0].source)
    _check_stride(network.stride, width, height, size, net)
    return network


def _build_layers(body: list[Section], input_shape) -> list[Layer]:
    layers: list[Layer] = []
    for index, sec in enumerate(body):
        _check_keys(sec)
        if sec.kind == "net":
            raise CfgError(f"{sec.where()} a second [net] section: expected layer sections only")
        prev = layers[-1].out_shape if layers else input_shape
        try:
            layers.append(_build_layer(index, sec, prev, layers, input_shape))
        except CfgError as err:
            if str(err).startswith(sec.source):
                raise
            raise CfgError(f"{sec.where()} {err}") from None
    return layers


def _check_stride(stride: int, width: int, height: int, size, net: Section) -> None:
    if width % stride or height % stride:
        what = f"size {width}x{height}" if size else f"{net.where('width')} width={width}, height={height}"
        raise CfgError(f"{what}: expected a multiple of the network's total stride {stride} "
                       f"(e.g. {max(stride, round(width / stride) * stride)})")


def _build_layer(index: int, sec: Section, prev, layers: list[Layer], input_shape) -> Layer:
    if sec.kind == "convolutional":
        size = sec.int("size", 1, minimum=1)
        pad_flag = sec.int("pad", 0, minimum=0)
        padding = size // 2 if pad_flag else sec.int("padding", 0, minimum=0)
        return make_conv(index, prev, filters=sec.int("filters", minimum=1), size=size,
                         stride=sec.int("stride", 1, minimum=1), padding=padding,
                         groups=sec.int("groups", 1, minimum=1),
                         batch_normalize=bool(sec.int("batch_normalize", 0, minimum=0)),
                         activation=sec.choice("activation", ACTIVATIONS, "logistic"))
    if sec.kind == "maxpool":
        stride = sec.int("stride", 1, minimum=1)
        size = sec.int("size", stride, minimum=1)
        return make_maxpool(index, prev, size, stride, sec.int("padding", size - 1, minimum=0))
    if sec.kind == "avgpool":
        return AvgPool(index, (index - 1,), prev, (prev[0], 1, 1))
    if sec.kind == "reorg":
        return make_reorg(index, prev, sec.int("stride", 1, minimum=1))
    if sec.kind == "route":
        sources = []
        for rel in sec.int_list("layers"):
            src = index + rel if rel < 0 else rel
            if not 0 <= src < index:
                raise sec.fail("layers", f"indices of earlier layers (layer {index} cannot read layer {src})")
            sources.append(src)
        return make_route(index, tuple(sources), [layers[s].out_shape for s in sources])
    if sec.kind == "softmax":
        groups = sec.int("groups", 1, minimum=1)
        if (prev[0] * prev[1] * prev[2]) % groups:
            raise sec.fail("groups", f"a divisor of the input size {prev[0] * prev[1] * prev[2]}")
        return Softmax(index, (index - 1,), prev, prev, groups)
    if sec.kind == "cost":
        return Cost(index, (index - 1,), prev, prev)
    if sec.kind == "region":
        num = sec.int("num", 1, minimum=1)
        classes = sec.int("classes", 20, minimum=1)
        coords = sec.int("coords", 4, minimum=4)
        anchors = sec.float_list("anchors")
        if len(anchors) != 2 * num:
            raise sec.fail("anchors", f"{2 * num} numbers (num={num} anchors of width,height), got {len(anchors)}")
        if any(a <= 0 for a in anchors):
            raise sec.fail("anchors", "positive anchor sizes")
        want = num * (coords + 1 + classes)
        if prev[0] != want:
            raise CfgError(f"{sec.where()} the layer before has {prev[0]} channels: expected num*(coords+1+classes)"
                           f" = {num}*({coords}+1+{classes}) = {want}")
        return Region(index, (index - 1,), prev, prev, anchors, classes, coords, num,
                      bool(sec.int("softmax", 0, minimum=0)))
    raise AssertionError(sec.kind)


def resolve_cfg(cfg: str | Path) -> Path:
    """A path to an existing file, or the name of a bundled cfg."""
    path = Path(cfg)
    if path.is_file():
        return path
    if (BUNDLED_DIR / path.name).is_file() and str(cfg) == path.name:
        return BUNDLED_DIR / path.name
    raise CfgError(f"cfg {str(cfg)!r}: no such file, and not a bundled cfg (bundled: {', '.join(BUNDLED_CFGS)})")


def load_network(cfg: str | Path, size: int | tuple[int, int] | None = None) -> Network:
    path = resolve_cfg(cfg)
    if isinstance(size, int):
        size = (size, size)
    if size is not None and min(size) < 1:
        raise CfgError(f"size {size[0]}x{size[1]}: expected a positive multiple of the network's stride")
    return build_network(parse_sections(read_cfg_text(path), str(path)), name=path.stem, size=size)


def read_cfg_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CfgError(f"{path}: not a text cfg: byte 0x{err.object[err.start]:02x} at offset {err.start} is not "
                       f"UTF-8") from None
    except OSError as err:
        raise CfgError(f"{path}: cannot read cfg: {err.strerror or err}") from None


def cfg_text_at_size(cfg: str | Path, size: int) -> str:
    """A cfg's text with [net] width and height rewritten, for tools that read the size from the text."""
    lines = []
    for line in read_cfg_text(resolve_cfg(cfg)).removeprefix("\ufeff").splitlines():
        key = "".join(line.split()).split("=")[0]
        lines.append(f"{key}={size}" if key in ("width", "height") else line)
    return "\n".join(lines) + "\n"
