"""The network as an ONNX graph with the same weights, for peers that read ONNX (ONNX Runtime, OpenVINO).

Built from the network description, not converted from a file: every conv carries its batch norm folded
into its weights and bias (what any exporter does), each activation is its own node, Darknet's maxpool
padding becomes ONNX pads, its reorg the reshape/transpose that reproduces its flat index arithmetic, a
route's channel split a slice, an upsample a nearest resize. The graph's outputs are the tensors feeding
the detection heads, which the engine is checked on, then the heads' results as the engine computes them
([region]: logistic on x, y and objectness, softmax over classes; [yolo]: logistic on x, y (scaled by
scale_x_y), objectness and classes), so that the peers do the engine's work.
"""
from __future__ import annotations

import numpy as np

from yolo.network import (INPUT, AvgPool, Conv, MaxPool, Network, Region, Reorg, Route, ScaleChannels,
                           Shortcut, Upsample, Yolo)
from yolo.params import Params

OPSET = 17
IR_VERSION = 8  # what ONNX Runtime and OpenVINO of 2026 read; onnx writes a newer one by default


ACTIVATIONS = {"leaky": ("LeakyRelu", {"alpha": 0.1}), "relu": ("Relu", {}), "logistic": ("Sigmoid", {})}


def onnx_model(network: Network, params: Params) -> bytes:
    """The serialized ModelProto computing ``network``'s head inputs, then its heads' outputs; batch 1."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights = [], []
    names = {INPUT: "image"}

    def constant(name: str, array: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(array, name))
        return name

    def activated(op: str, inputs: list[str], out: str, activation: str, **attributes) -> None:
        """``op`` into ``out``, through its activation's node unless linear."""
        if activation == "linear":
            nodes.append(helper.make_node(op, inputs, [out], **attributes))
            return
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} has no ONNX form here")
        kind, options = ACTIVATIONS[activation]
        nodes.append(helper.make_node(op, inputs, [f"{out}_in"], **attributes))
        nodes.append(helper.make_node(kind, [f"{out}_in"], [out], **options))

    def head(layer, src: str, out: str) -> None:
        """A [region] or [yolo] head as the engine runs it: per anchor, x and y, the other coords, objectness
        and classes along one axis, each part as the head treats it."""
        c, h, w = layer.out_shape
        coords = layer.coords if isinstance(layer, Region) else 4
        per = c // layer.num
        shape = constant(f"{out}_anchors", np.array([1, layer.num, per, h, w], np.int64))
        whole = constant(f"{out}_shape", np.array([1, c, h, w], np.int64))
        parts = constant(f"{out}_parts", np.array([2, coords - 2, 1, per - coords - 1], np.int64))
        xy, wh, objectness, classes = (f"{out}_{p}" for p in ("xy", "wh", "objectness", "classes"))
        nodes.extend([helper.make_node("Reshape", [src, shape], [f"{out}_in"]),
                      helper.make_node("Split", [f"{out}_in", parts], [xy, wh, objectness, classes], axis=2),
                      helper.make_node("Sigmoid", [objectness], [objectness + "_out"])])
        if isinstance(layer, Region):
            nodes.extend([helper.make_node("Sigmoid", [xy], [xy + "_out"]),
                          helper.make_node("Softmax" if layer.softmax else "Sigmoid", [classes], [classes + "_out"],
                                           **({"axis": 2} if layer.softmax else {}))])
        else:
            scale = constant(f"{out}_scale", np.float32(layer.scale_x_y))
            shift = constant(f"{out}_shift", np.float32(-0.5 * (layer.scale_x_y - 1)))
            nodes.extend([helper.make_node("Sigmoid", [xy], [xy + "_logistic"]),
                          helper.make_node("Mul", [xy + "_logistic", scale], [xy + "_scaled"]),
                          helper.make_node("Add", [xy + "_scaled", shift], [xy + "_out"]),
                          helper.make_node("Sigmoid", [classes], [classes + "_out"])])
        nodes.extend([helper.make_node("Concat", [xy + "_out", wh, objectness + "_out", classes + "_out"],
                                       [f"{out}_out"], axis=2),
                      helper.make_node("Reshape", [f"{out}_out", whole], [out])])

    for layer in network.layers:
        src = [names[i] for i in layer.inputs]
        out = f"l{layer.index}"
        if isinstance(layer, Conv):
            p = params[layer.index]
            mult, offset = p.epilogue(layer.bn_rule)
            w = constant(f"w{layer.index}", (p.weights * mult[:, None, None, None]).astype(np.float32))
            b = constant(f"b{layer.index}", offset)
            activated("Conv", [src[0], w, b], out, layer.activation, kernel_shape=[layer.size] * 2,
                      strides=[layer.stride] * 2, pads=[layer.padding] * 4, group=layer.groups)
        elif isinstance(layer, MaxPool):
            begin = layer.padding // 2
            nodes.append(helper.make_node("MaxPool", src, [out], kernel_shape=[layer.size] * 2,
                                          strides=[layer.stride] * 2,
                                          pads=[begin, begin, layer.padding - begin, layer.padding - begin]))
        elif isinstance(layer, Route):
            parts = src
            if layer.groups > 1:  # each source's part group_id of groups, along the channels
                parts = []
                for i, name in zip(layer.inputs, src):
                    a, b = layer.channel_range(network.shape_of(i)[0])
                    starts, ends, axes = (constant(f"{out}_{name}_{k}", np.array([v], np.int64))
                                          for k, v in (("from", a), ("to", b), ("axis", 1)))
                    nodes.append(helper.make_node("Slice", [name, starts, ends, axes], [f"{out}_{name}"]))
                    parts.append(f"{out}_{name}")
            nodes.append(helper.make_node("Concat", parts, [out], axis=1) if len(parts) > 1
                         else helper.make_node("Identity", parts, [out]))
        elif isinstance(layer, Shortcut):
            if network.shape_of(layer.inputs[1]) != layer.out_shape:
                raise ValueError(f"layer {layer.index}: a shortcut of maps of two shapes has no ONNX form here")
            activated("Add", src, out, layer.activation)
        elif isinstance(layer, ScaleChannels):  # the previous layer's (C, 1, 1) scales times the other map
            activated("Mul", [src[1], src[0]], out, layer.activation)
        elif isinstance(layer, AvgPool):
            nodes.append(helper.make_node("GlobalAveragePool", src, [out]))
        elif isinstance(layer, Upsample):
            scales = constant(f"{out}_scales", np.array([1, 1, layer.stride, layer.stride], np.float32))
            resized = out if layer.scale == 1 else f"{out}_resized"
            nodes.append(helper.make_node("Resize", [src[0], "", scales], [resized], mode="nearest"))
            if layer.scale != 1:
                nodes.append(helper.make_node("Mul", [resized, constant(f"{out}_by", np.float32(layer.scale))],
                                              [out]))
        elif isinstance(layer, Reorg):
            # Darknet reads the input as (C/s^2, H*s, W*s) and gathers channel k = (oy*s + ox)*C/s^2 + c
            # from rows j*s + oy, columns i*s + ox: a reshape, a transpose, a reshape.
            c, h, w = layer.in_shape
            s = layer.stride
            split = constant(f"split{layer.index}", np.array([1, c // (s * s), h, s, w, s], np.int64))
            whole = constant(f"shape{layer.index}", np.array((1, *layer.out_shape), np.int64))
            nodes += [helper.make_node("Reshape", [src[0], split], [f"{out}_split"]),
                      helper.make_node("Transpose", [f"{out}_split"], [f"{out}_t"], perm=[0, 3, 5, 1, 2, 4]),
                      helper.make_node("Reshape", [f"{out}_t", whole], [out])]
        elif isinstance(layer, (Region, Yolo)) and layer.inputs == (layer.index - 1,):
            head(layer, src[0], out)
        else:
            raise ValueError(f"layer {layer.index} ({layer.kind}) has no ONNX form here")
        names[layer.index] = out

    tensors = list(network.head_inputs) + [h.index for h in network.heads]
    outputs = [helper.make_tensor_value_info(names[i], TensorProto.FLOAT, [1, *network.shape_of(i)])
               for i in tensors]
    graph = helper.make_graph(
        nodes, network.name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, *network.input_shape])],
        outputs, initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model.SerializeToString()
