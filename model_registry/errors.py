"""Errors of the model registry, each with a stable code (the API maps codes to HTTP statuses)."""

from __future__ import annotations


class ModelRegistryError(Exception):
    code = "model_registry_error"


class ParityError(ModelRegistryError):
    """The ONNX graph does not reproduce the LightGBM model: the version is not registered."""

    code = "onnx_parity_failed"

    def __init__(self, name: str, max_abs_diff: float, tolerance: float) -> None:
        self.max_abs_diff = max_abs_diff
        super().__init__(f"ONNX parity failed for {name}: max absolute difference {max_abs_diff:.3g} exceeds "
                         f"{tolerance:g}; the version was not registered")


class ModelNotFoundError(ModelRegistryError):
    code = "model_not_found"

    def __init__(self, name: str, alias: str | None = None) -> None:
        where = f"{name}@{alias}" if alias else name
        super().__init__(f"no registered model {where}; run `crm train {name if name != 'risk_profile' else 'risk'}`")


class PromotionRefusedError(ModelRegistryError):
    code = "promotion_refused"
