"""The champions as one ONNX graph: one input conversion and one ONNX Runtime call per decision.

Each registered model keeps its own graph (and its parity check); at load time they are put side by side in one
graph over one float32 input holding every indicator any model reads: a ``Gather`` takes each model's columns, the
model's own nodes follow unchanged (names prefixed), and the outputs are the models' outputs. The same operators on
the same float32 values give the same numbers as a session per model. An action-effect model (the retention uplift)
runs inside the same graph on every (client, action) pair, built from its columns by a few reshaping nodes.

The graph also gives the churn model's leaf in every tree, which the explanation of the likely cause needs: a
``TreeEnsembleRegressor`` with the churn trees' own nodes, whose leaves output their LightGBM leaf index into the
target of their tree. That replaces a second pass over the trees by LightGBM per decision. The leaf numbering is
mapped by walking each LightGBM tree (left child: the branch taken when the test holds) beside its ONNX tree (the
converter makes the left child the true branch); :func:`leaf_parity` checks the result against LightGBM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

INPUT_NAME = "indicators"
LEAVES_OUTPUT = "churn_leaves"
_ML_DOMAIN = "ai.onnx.ml"
_NODE_ATTRIBUTES = ("nodes_falsenodeids", "nodes_featureids", "nodes_hitrates", "nodes_missing_value_tracks_true",
                    "nodes_modes", "nodes_nodeids", "nodes_treeids", "nodes_truenodeids", "nodes_values")


class CombinationError(ValueError):
    """The graphs cannot be combined as expected (an unexpected converter layout)."""


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _leaf_numbers(classifier, trees: Sequence[dict]) -> list[int]:
    """For each leaf entry of the classifier (``class_nodeids``), the LightGBM leaf index it stands for."""
    attrs = _attributes(classifier)
    children: dict[tuple[int, int], tuple[int, int]] = {}
    for tree, node, mode, true, false in zip(attrs["nodes_treeids"], attrs["nodes_nodeids"], attrs["nodes_modes"],
                                             attrs["nodes_truenodeids"], attrs["nodes_falsenodeids"], strict=True):
        if (mode.decode() if isinstance(mode, bytes) else mode) != "LEAF":
            children[(tree, node)] = (true, false)
    leaf_of: dict[tuple[int, int], int] = {}
    for t, info in enumerate(trees):
        stack = [(info["tree_structure"], 0)]
        while stack:
            node, onnx_id = stack.pop()
            if "split_index" not in node:
                leaf_of[(t, onnx_id)] = int(node.get("leaf_index", 0))
                continue
            if (t, onnx_id) not in children:
                raise CombinationError(f"tree {t}: ONNX node {onnx_id} is a leaf where LightGBM splits")
            true, false = children[(t, onnx_id)]
            stack += [(node["left_child"], true), (node["right_child"], false)]
    try:
        return [leaf_of[(t, n)] for t, n in zip(attrs["class_treeids"], attrs["class_nodeids"], strict=True)]
    except KeyError as e:
        raise CombinationError(f"ONNX leaf {e} has no LightGBM leaf") from None


def leaves_node(classifier, trees: Sequence[dict], input_name: str, output_name: str):
    """A TreeEnsembleRegressor over the classifier's trees whose output [N, trees] is each row's leaf index."""
    from onnx import helper

    attrs = _attributes(classifier)
    numbers = _leaf_numbers(classifier, trees)
    if len(set(attrs["class_treeids"])) != len(trees):
        raise CombinationError(f"the graph has {len(set(attrs['class_treeids']))} trees, LightGBM {len(trees)}")
    return helper.make_node(
        "TreeEnsembleRegressor", [input_name], [output_name], domain=_ML_DOMAIN, name="churn_leaf_index",
        n_targets=len(trees), aggregate_function="SUM", post_transform="NONE",
        target_treeids=list(attrs["class_treeids"]), target_nodeids=list(attrs["class_nodeids"]),
        target_ids=list(attrs["class_treeids"]), target_weights=[float(n) for n in numbers],
        **{name: attrs[name] for name in _NODE_ATTRIBUTES if name in attrs})


def _action_pairs(name: str, width: int, actions: int, indicators: str, pairs: str) -> tuple[list, list]:
    """Nodes and initializers that turn a model's indicators [N, width] into every (client, action) pair
    [actions × N, width + actions], action-major: the indicators, then the one-hot action (opset 9 operators)."""
    from onnx import helper, numpy_helper

    def const(suffix: str, value: np.ndarray):
        return numpy_helper.from_array(value, f"{name}/pairs/{suffix}")

    p = f"{name}/pairs/"
    initializers = [const("one_row", np.asarray([1, -1, width], np.int64)),
                    const("actions", np.asarray([actions], np.int64)),
                    const("width", np.asarray([width], np.int64)),
                    const("one_hot", np.eye(actions, dtype=np.float32)[:, None, :]),
                    const("flat", np.asarray([-1, width + actions], np.int64))]
    nodes = [
        helper.make_node("Reshape", [indicators, p + "one_row"], [p + "x"]),  # [1, N, width]
        helper.make_node("Shape", [indicators], [p + "shape"]),
        helper.make_node("Slice", [p + "shape"], [p + "n"], starts=[0], ends=[1]),  # [N]
        helper.make_node("Concat", [p + "actions", p + "n", p + "width"], [p + "x_shape"], axis=0),
        helper.make_node("Concat", [p + "actions", p + "n", p + "actions"], [p + "a_shape"], axis=0),
        helper.make_node("Expand", [p + "x", p + "x_shape"], [p + "x_each"]),  # [actions, N, width]
        helper.make_node("Expand", [p + "one_hot", p + "a_shape"], [p + "a_each"]),  # [actions, N, actions]
        helper.make_node("Concat", [p + "x_each", p + "a_each"], [p + "both"], axis=2),
        helper.make_node("Reshape", [p + "both", p + "flat"], [pairs]),
    ]
    return nodes, initializers


def _per_client_effects(name: str, actions: int, effects: str, out: str) -> tuple[list, list]:
    """Nodes that turn the effects of the pairs [actions × N, 1] into [N, actions]."""
    from onnx import helper, numpy_helper

    p = f"{name}/effects/"
    shape = numpy_helper.from_array(np.asarray([actions, -1], np.int64), p + "by_action")
    return ([helper.make_node("Reshape", [effects, p + "by_action"], [p + "by_action_out"]),
             helper.make_node("Transpose", [p + "by_action_out"], [out], perm=[1, 0])], [shape])


def combine(graphs: Mapping[str, bytes], columns: Mapping[str, Sequence[int]], n_inputs: int,
            leaves_of: str | None = None, trees: Sequence[dict] | None = None,
            effects: Mapping[str, int] | None = None) -> tuple[bytes, dict[str, str]]:
    """One graph over an input [N, n_inputs]; ``columns[name]`` are the input columns of model ``name``, in its
    order. Returns the graph and, per model, the name of its output (the last output of its own graph: the
    probabilities of a classifier, the value of a regressor); with ``leaves_of`` and its LightGBM ``trees``
    (``dump_model()["tree_info"]``), also ``LEAVES_OUTPUT`` under that key + ``"_leaves"``. A model named in
    ``effects`` (name → number of actions) is an action-effect model over the indicators and a one-hot action: it
    runs on every (client, action) pair, and its output is [N, actions], the same numbers as its own graph gives
    for each pair."""
    import onnx
    from onnx import compose, helper, numpy_helper

    nodes, initializers, outputs, output_of = [], [], [], {}
    opsets: dict[str, int] = {}
    effects = effects or {}
    for name, raw in graphs.items():
        model = compose.add_prefix(onnx.load_from_string(raw), prefix=f"{name}/")
        graph = model.graph
        if len(graph.input) != 1:
            raise CombinationError(f"{name}: expected one input, found {len(graph.input)}")
        for opset in model.opset_import:
            # The converter declares the lowest opset each graph needs; the operators used (trees, Cast, Sum, ...)
            # keep their meaning in later opsets, so the graph takes the highest (checked exactly at load).
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
        index = f"{name}/columns"
        initializers.append(numpy_helper.from_array(np.asarray(columns[name], dtype=np.int64), index))
        model_input = graph.input[0].name if name not in effects else f"{name}/indicators"
        nodes.append(helper.make_node("Gather", [INPUT_NAME, index], [model_input], axis=1, name=f"{name}/gather"))
        if name in effects:
            more_nodes, more = _action_pairs(name, len(columns[name]), effects[name], model_input,
                                             graph.input[0].name)
            nodes.extend(more_nodes)
            initializers.extend(more)
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        if name in effects:
            out = f"{name}/per_client_effects"
            more_nodes, more = _per_client_effects(name, effects[name], graph.output[-1].name, out)
            nodes.extend(more_nodes)
            initializers.extend(more)
            outputs.append(helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, [None, effects[name]]))
            output_of[name] = out
            continue
        outputs.append(graph.output[-1])
        output_of[name] = graph.output[-1].name
        if name == leaves_of:
            classifiers = [n for n in graph.node if n.op_type == "TreeEnsembleClassifier"]
            if len(classifiers) != 1 or trees is None:
                raise CombinationError(f"{name}: expected one TreeEnsembleClassifier and its LightGBM trees")
            nodes.append(leaves_node(classifiers[0], trees, graph.input[0].name, LEAVES_OUTPUT))
            outputs.append(helper.make_tensor_value_info(LEAVES_OUTPUT, onnx.TensorProto.FLOAT, [None, len(trees)]))
            output_of[f"{name}_leaves"] = LEAVES_OUTPUT
    graph = helper.make_graph(
        nodes, "champions",
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [None, n_inputs])], outputs,
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = min(onnx.load_from_string(next(iter(graphs.values()))).ir_version, model.ir_version)
    onnx.checker.check_model(model)
    return model.SerializeToString(), output_of


class CombinedScorer:
    """One ONNX Runtime session over the combined graph; :meth:`run` returns every output by model name."""

    def __init__(self, onnx_bytes: bytes, output_of: Mapping[str, str], threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        self.names = list(output_of)
        self._outputs = [output_of[n] for n in self.names]

    def run(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        results = self.session.run(self._outputs, {INPUT_NAME: matrix})
        return {name: r.reshape(len(matrix), -1) if r.ndim == 1 else r
                for name, r in zip(self.names, results, strict=True)}


def leaf_parity(leaves: np.ndarray, booster, features: np.ndarray) -> int:
    """How many rows' leaves differ between the graph's leaf output and LightGBM's own (0 when they agree)."""
    native = booster.predict(np.asarray(features, dtype=np.float64), pred_leaf=True, num_threads=1)
    native = np.asarray(native).reshape(len(features), -1)
    return int(np.sum(np.any(native != leaves.astype(np.int64), axis=1)))
