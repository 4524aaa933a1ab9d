"""One cfg section (``yolo.cfg.Section``) -> one layer: Darknet's option defaults and each layer's checks,
every error naming the file, line, key and value."""
from __future__ import annotations

from yolo.errors import CfgError
from yolo.network import (ACTIVATIONS, NMS_KINDS, AvgPool, Cost, Layer, Region, ScaleChannels, Shortcut, Softmax,
                          Upsample, Yolo, make_conv, make_maxpool, make_reorg, make_route)


def _source(sec, key: str, index: int, rel: int) -> int:
    """An absolute layer index from a relative (negative) or absolute one, checked to be an earlier layer."""
    src = index + rel if rel < 0 else rel
    if not 0 <= src < index:
        raise sec.fail(key, f"indices of earlier layers (layer {index} cannot read layer {src})")
    return src


def build_layer(index: int, sec, prev, layers: list[Layer], bn_rule: str) -> Layer:
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


def _anchors(sec, num: int) -> tuple[float, ...]:
    anchors = sec.float_list("anchors")
    if len(anchors) != 2 * num:
        raise sec.fail("anchors", f"{2 * num} numbers (num={num} anchors of width,height), got {len(anchors)}")
    if any(a <= 0 for a in anchors):
        raise sec.fail("anchors", "positive anchor sizes")
    return anchors


def _check_head_channels(sec, prev, boxes: int, rule: str, want: int) -> None:
    if prev[0] != want:
        raise CfgError(f"{sec.where()} the layer before has {prev[0]} channels: expected {rule} = {want}")
