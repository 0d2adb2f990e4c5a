"""LightGBM → ONNX conversion and the parity check that guards every registered version."""

from __future__ import annotations

import numpy as np

PARITY_TOLERANCE = 1e-5
ONNX_OPSET = 15  # onnxmltools 1.16 converts LightGBM up to opset 15
INPUT_NAME = "features"
REGRESSION_SPLIT = 20


def to_onnx(model, n_features: int) -> bytes:
    """The model's ONNX graph: one float32 input [N, n_features]; classifiers output plain probabilities."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    # Regressors add many tree outputs: summing them in float32 drifts, so the converter sums chunks of
    # trees in double (the `split` option, which onnxmltools only handles for more trees than one chunk).
    regressor = not hasattr(model, "predict_proba")
    split = REGRESSION_SPLIT if regressor and model.booster_.num_trees() > REGRESSION_SPLIT else None
    onnx_model = convert_lightgbm(model, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
                                  target_opset=ONNX_OPSET, zipmap=False, split=split)
    return onnx_model.SerializeToString()


class OnnxScorer:
    """Runs an ONNX graph with ONNX Runtime: on one thread for the API (one client at a time, no thread hand-off),
    on every core (``threads=0``) for population scoring."""

    def __init__(self, onnx_bytes: bytes, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        outputs = [o.name for o in self.session.get_outputs()]
        # Classifiers have (label, probabilities); regressors a single output.
        self.output = outputs[-1]

    def predict(self, features: np.ndarray) -> np.ndarray:
        result = self.session.run([self.output], {INPUT_NAME: np.ascontiguousarray(features, dtype=np.float32)})[0]
        return result.reshape(len(features), -1) if result.ndim == 1 else result


def native_predict(model, features: np.ndarray) -> np.ndarray:
    """LightGBM's own scores in the shape ONNX returns: class probabilities, or the regression value."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(features)
    return model.predict(features).reshape(-1, 1)


def parity_max_abs_diff(model, onnx_bytes: bytes, features: np.ndarray) -> float:
    """Largest absolute difference between LightGBM and ONNX Runtime on the same float32 inputs."""
    features = np.asarray(features, dtype=np.float32)
    expected = native_predict(model, features)
    actual = OnnxScorer(onnx_bytes).predict(features)
    return float(np.max(np.abs(expected - actual))) if len(features) else 0.0


def make_float32_exact(model):
    """Round every split threshold down to the nearest float32, in place.

    LightGBM compares inputs with double thresholds, ONNX Runtime with float32 ones. For float32 inputs (all the
    product ever feeds) ``x <= t`` and ``x <= round_down_f32(t)`` are the same test, so the model's predictions do
    not change, and the ONNX graph then takes exactly the same branches.
    """
    import lightgbm

    lines = model.booster_.model_to_string().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("threshold="):
            exact = np.array(line[len("threshold="):].split(), dtype=np.float64)
            single = exact.astype(np.float32)
            above = single.astype(np.float64) > exact
            single[above] = np.nextafter(single[above], np.float32(-np.inf))
            lines[i] = "threshold=" + " ".join(repr(float(v)) for v in single)
    # The header's tree_sizes give byte offsets of the original text; without it LightGBM reads trees in order.
    lines = [line for line in lines if not line.startswith("tree_sizes=")]
    model._Booster = lightgbm.Booster(model_str="\n".join(lines) + "\n")
    return model
