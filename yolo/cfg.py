"""Darknet .cfg parsing: text -> [Section] (with line numbers) -> yolo.network.Network.

Unknown sections and keys are errors; training-only keys are ignored by an explicit list, so a typo
never passes silently. Every error names the file, the line, the key and the value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from yolo.errors import CfgError
from yolo.cfg_layers import build_layer
from yolo.network import Layer, Network

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
            layers.append(build_layer(index, sec, prev, layers, bn_rule))
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
