"""The network as an ONNX graph with the same weights, for peers that read ONNX (ONNX Runtime, OpenVINO).

Built from the network description, not converted from a file: every conv carries its batch norm folded
into its weights and bias (what any exporter does), the activation as its own node, Darknet's maxpool
padding as ONNX pads, and Darknet's reorg as the reshape/transpose that reproduces its flat index
arithmetic. The graph's first output is the tensor feeding the detection head, the tensor the engine is
checked on; a [region] head follows it as the engine runs it (logistic on x, y and objectness, softmax over
classes), its result the second output, so that the peers do the engine's work.
"""
from __future__ import annotations

import numpy as np

from yolo.network import INPUT, Conv, MaxPool, Network, Reorg, Route
from yolo.params import Params

OPSET = 17
IR_VERSION = 8  # what ONNX Runtime and OpenVINO of 2026 read; onnx writes a newer one by default


def onnx_model(network: Network, params: Params) -> bytes:
    """The serialized ModelProto computing ``network``'s head tensor and, if its head is a [region], the
    head's output; batch 1."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights = [], []
    names = {INPUT: "image"}

    def constant(name: str, array: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(array, name))
        return name

    for layer in network.layers[:network.head_index + 1]:
        src = [names[i] for i in layer.inputs]
        out = f"l{layer.index}"
        if isinstance(layer, Conv):
            p = params[layer.index]
            mult, offset = p.epilogue()
            w = constant(f"w{layer.index}", (p.weights * mult[:, None, None, None]).astype(np.float32))
            b = constant(f"b{layer.index}", offset)
            pad = layer.padding
            conv = out if layer.activation == "linear" else f"{out}_conv"
            nodes.append(helper.make_node("Conv", [src[0], w, b], [conv], kernel_shape=[layer.size] * 2,
                                          strides=[layer.stride] * 2, pads=[pad] * 4, group=layer.groups))
            if layer.activation == "leaky":
                nodes.append(helper.make_node("LeakyRelu", [conv], [out], alpha=0.1))
            elif layer.activation == "relu":
                nodes.append(helper.make_node("Relu", [conv], [out]))
            elif layer.activation == "logistic":
                nodes.append(helper.make_node("Sigmoid", [conv], [out]))
        elif isinstance(layer, MaxPool):
            begin = layer.padding // 2
            nodes.append(helper.make_node("MaxPool", src, [out], kernel_shape=[layer.size] * 2,
                                          strides=[layer.stride] * 2,
                                          pads=[begin, begin, layer.padding - begin, layer.padding - begin]))
        elif isinstance(layer, Route):
            nodes.append(helper.make_node("Concat", src, [out], axis=1) if len(src) > 1
                         else helper.make_node("Identity", src, [out]))
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
        else:
            raise ValueError(f"layer {layer.index} ({layer.kind}) has no ONNX form here")
        names[layer.index] = out

    head = network[network.head_index]
    outputs = [helper.make_tensor_value_info(names[head.index], TensorProto.FLOAT, [1, *head.out_shape])]
    region = network.region
    if region is not None and region.inputs == (head.index,):
        # per anchor: x and y, the other coords, objectness, classes along one axis, each as the head treats it
        c, h, w = region.out_shape
        per = region.coords + 1 + region.classes
        by_anchor = constant("anchors", np.array([1, region.num, per, h, w], np.int64))
        whole = constant("region_shape", np.array([1, c, h, w], np.int64))
        parts = constant("region_parts", np.array([2, region.coords - 2, 1, region.classes], np.int64))
        xy, wh, objectness, classes = (f"region_{p}" for p in ("xy", "wh", "objectness", "classes"))
        nodes += [helper.make_node("Reshape", [names[head.index], by_anchor], ["region_in"]),
                  helper.make_node("Split", ["region_in", parts], [xy, wh, objectness, classes], axis=2),
                  helper.make_node("Sigmoid", [xy], [xy + "_out"]),
                  helper.make_node("Sigmoid", [objectness], [objectness + "_out"]),
                  helper.make_node("Softmax" if region.softmax else "Sigmoid", [classes], [classes + "_out"],
                                   **({"axis": 2} if region.softmax else {})),
                  helper.make_node("Concat", [xy + "_out", wh, objectness + "_out", classes + "_out"],
                                   ["region_out"], axis=2),
                  helper.make_node("Reshape", ["region_out", whole], ["region"])]
        outputs.append(helper.make_tensor_value_info("region", TensorProto.FLOAT, [1, c, h, w]))
    graph = helper.make_graph(
        nodes, network.name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, *network.input_shape])],
        outputs, initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model.SerializeToString()
