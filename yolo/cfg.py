"""Darknet .cfg parsing: text -> [Section] (with line numbers) -> yolo.network.Network.

Unknown sections and keys are errors; training-only keys are ignored by an explicit list, so a typo
never passes silently. Every error names the file, the line, the key and the value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from yolo.errors import CfgError
from yolo.network import (ACTIVATIONS, NMS_KINDS, AvgPool, Cost, Layer, Network, Region, ScaleChannels, Shortcut,
                          Softmax, Upsample, Yolo, make_conv, make_maxpool, make_reorg, make_route)

BUNDLED_DIR = Path(__file__).parent / "data"
MAX_INPUT_PIXELS = 4096 * 4096  # a network input larger than this is surely a typo (yolov2 at 608 has 0.37M)
TRAINED_MODELS = ("MobileNetV2-YOLOv3-Nano-coco", "MobileNetV2-YOLOv3-Nano-voc", "MobileNetV2-YOLO-Fastest-voc",
                  "MobileNetV2-YOLO-Fastest-voc-v2", "yoloface-500k", "yoloface-500k-v2", "yoloface-50k")
BUNDLED_CFGS = ("yolov2.cfg", "yolov2-tiny.cfg", "yolov2-voc.cfg", "yolov2-tiny-voc.cfg") + tuple(
    f"{name}.cfg" for name in TRAINED_MODELS)

# Keys Darknet reads only for training (or data augmentation); accepted and ignored.
TRAINING_KEYS = {
    "net": {"batch", "subdivisions", "momentum", "decay", "angle", "saturation", "exposure", "hue",
            "learning_rate", "burn_in", "max_batches", "policy", "steps", "scales", "min_crop", "max_crop",
            "aspect", "power", "step", "gamma", "max_crop", "random", "jitter", "adam", "b1", "b2", "eps",
            "inputs", "time_steps", "notruth", "center", "clip", "subdivision", "mosaic", "mixup", "cutmix", "flip",
            "blur", "gaussian_noise", "label_smooth_eps", "track", "augment_speed", "sequential_subdivisions",
            "try_fix_nan", "max_chart_loss", "ema_alpha", "adversarial_lr", "mosaic_bound", "contrastive",
            "unsupervised", "use_cuda_graph", "loss_scale", "dynamic_minibatch", "optimized_memory",
            "workspace_size_limit_MB", "cudnn_half", "show_receptive_field", "equidistant_point", "policy_scale"},
    "convolutional": {"flipped"},
    "maxpool": set(),
    "avgpool": set(),
    "route": {"stream", "wait_stream"},
    "reorg": set(),
    "shortcut": set(),
    "upsample": set(),
    "scale_channels": set(),
    "yolo": {"jitter", "ignore_thresh", "truth_thresh", "random", "iou_thresh", "cls_normalizer", "iou_normalizer",
             "obj_normalizer", "iou_loss", "max_delta", "resize", "counters_per_class", "label_smooth_eps",
             "focal_loss", "uc_normalizer", "objectness_smooth", "delta_normalizer", "track_history_size",
             "sim_thresh", "dets_for_track", "dets_for_show", "track_ciou_norm", "embedding_layer", "map",
             "show_details", "rewritten_box", "max"},
    "region": {"bias_match", "jitter", "rescore", "object_scale", "noobject_scale", "class_scale",
               "coord_scale", "absolute", "thresh", "random", "max"},
    "softmax": set(),
    "cost": {"type", "scale", "ratio", "noobject_scale", "thresh"},
}
USED_KEYS = {
    "net": {"width", "height", "channels", "letter_box"},
    "convolutional": {"batch_normalize", "filters", "size", "stride", "pad", "padding", "groups", "activation"},
    "maxpool": {"size", "stride", "padding"},
    "avgpool": set(),
    "route": {"layers", "groups", "group_id"},
    "reorg": {"stride"},
    "shortcut": {"from", "activation", "weights_type", "weights_normalization"},
    "upsample": {"stride", "scale"},
    "scale_channels": {"from", "activation", "scale_wh"},
    "yolo": {"mask", "anchors", "classes", "num", "scale_x_y", "nms_kind", "beta_nms", "new_coords"},
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

    def float(self, key: str, default: float) -> float:
        if key not in self.options:
            return default
        try:
            return float(self.options[key][0])
        except ValueError:
            raise self.fail(key, "a number") from None

    def float_list(self, key: str) -> tuple[float, ...]:
        text = self.options.get(key, ("", 0))[0]
        try:
            return tuple(float(v) for v in text.split(",") if v != "")
        except ValueError:
            raise self.fail(key, "a comma-separated list of numbers") from None

    def int_list(self, key: str, default: tuple[int, ...] | None = None) -> tuple[int, ...]:
        if key not in self.options:
            if default is not None:
                return default
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
    bn_rule = "alexeyab" if any(sec.kind == "yolo" for sec in body) else "pjreddie"  # see Network.fork
    try:
        layers = _build_layers(body, input_shape, bn_rule)
    except CfgError:
        if size is not None:  # a size the network cannot take usually shows first as a map a layer cannot divide
            _check_stride(build_network(sections, name).stride, width, height, size, net)
        raise
    network = Network(name, input_shape, tuple(layers), source=sections[0].source,
                      letter_box=bool(net.int("letter_box", 0, minimum=0)))
    _check_stride(network.stride, width, height, size, net)
    return network


def _build_layers(body: list[Section], input_shape, bn_rule: str) -> list[Layer]:
    layers: list[Layer] = []
    for index, sec in enumerate(body):
        _check_keys(sec)
        if sec.kind == "net":
            raise CfgError(f"{sec.where()} a second [net] section: expected layer sections only")
        prev = layers[-1].out_shape if layers else input_shape
        try:
            layers.append(_build_layer(index, sec, prev, layers, bn_rule))
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


def _source(sec: Section, key: str, index: int, rel: int) -> int:
    """An absolute layer index from a relative (negative) or absolute one, checked to be an earlier layer."""
    src = index + rel if rel < 0 else rel
    if not 0 <= src < index:
        raise sec.fail(key, f"indices of earlier layers (layer {index} cannot read layer {src})")
    return src


def _build_layer(index: int, sec: Section, prev, layers: list[Layer], bn_rule: str) -> Layer:
    if sec.kind == "convolutional":
        size = sec.int("size", 1, minimum=1)
        pad_flag = sec.int("pad", 0, minimum=0)
        padding = size // 2 if pad_flag else sec.int("padding", 0, minimum=0)
        return make_conv(index, prev, filters=sec.int("filters", minimum=1), size=size,
                         stride=sec.int("stride", 1, minimum=1), padding=padding,
                         groups=sec.int("groups", 1, minimum=1),
                         batch_normalize=bool(sec.int("batch_normalize", 0, minimum=0)),
                         activation=sec.choice("activation", ACTIVATIONS, "logistic"), bn_rule=bn_rule)
    if sec.kind == "maxpool":
        stride = sec.int("stride", 1, minimum=1)
        size = sec.int("size", stride, minimum=1)
        return make_maxpool(index, prev, size, stride, sec.int("padding", size - 1, minimum=0))
    if sec.kind == "avgpool":
        return AvgPool(index, (index - 1,), prev, (prev[0], 1, 1))
    if sec.kind == "reorg":
        return make_reorg(index, prev, sec.int("stride", 1, minimum=1))
    if sec.kind == "route":
        sources = tuple(_source(sec, "layers", index, rel) for rel in sec.int_list("layers"))
        groups = sec.int("groups", 1, minimum=1)
        group_id = sec.int("group_id", 0, minimum=0)
        if group_id >= groups:
            raise sec.fail("group_id", f"a part index below groups={groups}")
        for s in sources:
            if layers[s].out_shape[0] % groups:
                raise sec.fail("groups", f"a divisor of every source's channels (layer {s} has "
                                         f"{layers[s].out_shape[0]})")
        return make_route(index, sources, [layers[s].out_shape for s in sources], groups, group_id)
    if sec.kind in ("shortcut", "scale_channels"):
        src = _source(sec, "from", index, sec.int_list("from")[0])
        if len(sec.int_list("from")) > 1:
            raise sec.fail("from", "one layer (several are not supported)")
        activation = sec.choice("activation", ACTIVATIONS, "linear")
        if sec.kind == "shortcut":
            sec.choice("weights_type", ("none",), "none")  # weighted shortcuts are not supported
            sec.choice("weights_normalization", ("none",), "none")
            if layers[src].out_shape[1:] != prev[1:]:
                raise sec.fail("from", f"a layer of the previous layer's map size {prev[1]}x{prev[2]} (layer {src} "
                                       f"is {layers[src].out_shape[1]}x{layers[src].out_shape[2]})")
            return Shortcut(index, (index - 1, src), prev, prev, activation)
        if sec.int("scale_wh", 0, minimum=0):
            raise sec.fail("scale_wh", "0 (scaling by a spatial map is not supported)")
        shape = layers[src].out_shape
        if prev != (shape[0], 1, 1):
            raise CfgError(f"{sec.where()} the layer before gives {prev}: expected one scale per channel of layer "
                           f"{src}, ({shape[0]}, 1, 1)")
        return ScaleChannels(index, (index - 1, src), shape, shape, activation)
    if sec.kind == "upsample":
        stride = sec.int("stride", 2, minimum=1)
        c, h, w = prev
        return Upsample(index, (index - 1,), prev, (c, h * stride, w * stride), stride, sec.float("scale", 1.0))
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
        anchors = _anchors(sec, num)
        _check_head_channels(sec, prev, num, f"num*(coords+1+classes) = {num}*({coords}+1+{classes})",
                             num * (coords + 1 + classes))
        return Region(index, (index - 1,), prev, prev, anchors, classes, coords, num,
                      bool(sec.int("softmax", 0, minimum=0)))
    if sec.kind == "yolo":
        num = sec.int("num", 1, minimum=1)
        classes = sec.int("classes", 20, minimum=1)
        mask = sec.int_list("mask", tuple(range(num)))
        if any(not 0 <= m < num for m in mask):
            raise sec.fail("mask", f"anchor indices in 0..{num - 1}")
        if sec.int("new_coords", 0, minimum=0):
            raise sec.fail("new_coords", "0 (Scaled-YOLOv4's coordinates are not supported)")
        _check_head_channels(sec, prev, len(mask), f"len(mask)*(4+1+classes) = {len(mask)}*(5+{classes})",
                             len(mask) * (5 + classes))
        return Yolo(index, (index - 1,), prev, prev, mask, _anchors(sec, num), classes, sec.float("scale_x_y", 1.0),
                    sec.choice("nms_kind", NMS_KINDS, "default"), sec.float("beta_nms", 0.6))
    raise AssertionError(sec.kind)


def _anchors(sec: Section, num: int) -> tuple[float, ...]:
    anchors = sec.float_list("anchors")
    if len(anchors) != 2 * num:
        raise sec.fail("anchors", f"{2 * num} numbers (num={num} anchors of width,height), got {len(anchors)}")
    if any(a <= 0 for a in anchors):
        raise sec.fail("anchors", "positive anchor sizes")
    return anchors


def _check_head_channels(sec: Section, prev, boxes: int, rule: str, want: int) -> None:
    if prev[0] != want:
        raise CfgError(f"{sec.where()} the layer before has {prev[0]} channels: expected {rule} = {want}")


def resolve_cfg(cfg: str | Path) -> Path:
    """A path to an existing file, or the name of a bundled cfg."""
    path = Path(cfg)
    if path.is_file():
        return path
    if (BUNDLED_DIR / path.name).is_file() and str(cfg) == path.name:
        return BUNDLED_DIR / path.name
    raise CfgError(f"cfg {str(cfg)!r}: no such file, and not a bundled cfg (bundled: {', '.join(BUNDLED_CFGS)})")


def bundled_weights(cfg: str | Path) -> Path | None:
    """The trained weights bundled beside a bundled cfg, if it is one of the trained models."""
    path = resolve_cfg(cfg)
    weights = path.with_suffix(".weights")
    return weights if path.parent == BUNDLED_DIR and path.stem in TRAINED_MODELS and weights.is_file() else None


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
