"""The MLflow registry of the models (see model_registry.specs), with champion and challenger aliases.

A registered version carries its ONNX graph (the MLflow ONNX flavour, with a signature), and in its run the
serving bundle: ordered feature names and types, calibration, explanation inputs and the LightGBM model text
for contributions. A version is registered only after its ONNX graph passed the parity check.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model_registry.errors import ModelNotFoundError, ParityError
from model_registry.onnx_export import PARITY_TOLERANCE, parity_max_abs_diff, to_onnx

CHAMPION, CHALLENGER = "champion", "challenger"
SERVING_PATH = "serving"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version as people and the API see it."""

    name: str
    version: int
    aliases: tuple[str, ...]
    run_id: str
    metrics: dict[str, float]
    tags: dict[str, str]
    created: int = 0

    def as_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "aliases": list(self.aliases), "run_id": self.run_id,
                "metrics": self.metrics, "tags": self.tags}


@dataclass
class ServingBundle:
    """Everything the API needs to score and explain with one version."""

    name: str
    version: int
    onnx_bytes: bytes
    metadata: dict
    booster_text: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.metadata["signature"]]


class Registry:
    """MLflow tracking and registry at one URI; artifacts under one folder."""

    def __init__(self, tracking_uri: str, artifacts_dir: Path) -> None:
        import mlflow
        from mlflow import MlflowClient

        self.mlflow = mlflow
        self.tracking_uri = tracking_uri
        self.artifacts_dir = Path(artifacts_dir).resolve()
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # ----------------------------------------------------------------- writing
    def _experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        return self.client.create_experiment(name, artifact_location=(self.artifacts_dir / name).as_uri())

    def register(
        self,
        name: str,
        model,
        *,
        test_features: np.ndarray,
        signature: list[dict[str, str]],
        params: Mapping[str, object],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        serving_metadata: Mapping[str, object],
        plots_dir: Path | None = None,
    ) -> ModelVersion:
        """Log a run, check ONNX parity on the test window, and register the version (challenger, or
        champion when the model has none). Raises ParityError, after logging the failed run, when parity fails."""
        import onnx
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        onnx_bytes = to_onnx(model, len(signature))
        diff = parity_max_abs_diff(model, onnx_bytes, test_features)
        mlflow = self.mlflow
        with mlflow.start_run(experiment_id=self._experiment_id(name), run_name=f"{name}-training") as run:
            mlflow.log_params({k: str(v) for k, v in params.items()})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            mlflow.log_metric("onnx_parity_max_abs_diff", diff)
            mlflow.set_tags({**tags, "onnx_parity_passed": str(diff <= PARITY_TOLERANCE)})
            if plots_dir is not None and Path(plots_dir).exists():
                mlflow.log_artifacts(str(plots_dir), artifact_path="plots")
            if diff > PARITY_TOLERANCE:
                raise ParityError(name, diff, PARITY_TOLERANCE)
            mlflow.log_dict(dict(serving_metadata) | {"signature": signature}, f"{SERVING_PATH}/metadata.json")
            booster = model.booster_ if hasattr(model, "booster_") else model
            mlflow.log_text(booster.model_to_string(), f"{SERVING_PATH}/lightgbm.txt")
            input_schema = Schema([TensorSpec(np.dtype(np.float32), (-1, len(signature)), "features")])
            info = mlflow.onnx.log_model(onnx.load_from_string(onnx_bytes), name="model",
                                         signature=ModelSignature(inputs=input_schema))
            run_id = run.info.run_id
        version = self._new_version(name, info.model_uri, info.model_id, {**tags, "run_id": run_id})
        for key, value in metrics.items():
            self.client.set_model_version_tag(name, str(version), f"metric.{key}", f"{float(value):.6g}")
        self.client.set_model_version_tag(name, str(version), "onnx_parity_max_abs_diff", f"{diff:.3g}")
        self.client.set_model_version_tag(name, str(version), "run_id", run_id)
        alias = CHALLENGER if self.alias_version(name, CHAMPION) is not None else CHAMPION
        self.set_alias(name, alias, version)
        return self.version(name, version)

    def _new_version(self, name: str, model_uri: str, model_id: str | None, tags: Mapping[str, str]) -> int:
        """What ``mlflow.register_model`` does, through the client: the fluent helper prints "Successfully
        registered model" and "Created version" to stderr on every call (mlflow 3.17, eprint), and the console of
        `crm` keeps only the project's own messages."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
        from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

        try:
            self.client.create_registered_model(name)
        except MlflowException as e:
            if e.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
        created = self.client.create_model_version(name, source=model_uri, tags=dict(tags), model_id=model_id)
        if model_id:  # the logged model lists its registered versions, as register_model records them
            logged = self.client.get_logged_model(model_id)
            versions = json.loads(logged.tags.get(MLFLOW_MODEL_VERSIONS) or "[]")
            versions.append({"name": created.name, "version": created.version})
            self.client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(versions)})
        return int(created.version)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        self.client.delete_registered_model_alias(name, alias)

    # ----------------------------------------------------------------- reading
    def alias_version(self, name: str, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def version(self, name: str, version: int) -> ModelVersion:
        mv = self.client.get_model_version(name, str(version))
        return self._to_version(mv)

    def _to_version(self, mv) -> ModelVersion:
        tags = dict(mv.tags or {})
        metrics = {k.removeprefix("metric."): float(v) for k, v in tags.items() if k.startswith("metric.")}
        return ModelVersion(name=mv.name, version=int(mv.version), aliases=tuple(sorted(mv.aliases or [])),
                            run_id=tags.get("run_id", mv.run_id or ""), metrics=metrics,
                            tags={k: v for k, v in tags.items() if not k.startswith("metric.")},
                            created=int(mv.creation_timestamp or 0))

    def versions(self, name: str) -> list[ModelVersion]:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name='{name}'")
        except MlflowException:
            return []
        # Search results leave aliases out: read each version itself.
        return sorted((self.version(name, int(mv.version)) for mv in found), key=lambda v: v.version)

    def bundle(self, name: str, alias: str = CHAMPION, version: int | None = None) -> ServingBundle:
        """Download one version's ONNX graph and serving files."""
        if version is None:
            version = self.alias_version(name, alias)
            if version is None:
                raise ModelNotFoundError(name, alias)
        info = self.version(name, version)
        folder = Path(tempfile.mkdtemp(prefix=f"crm-{name}-{version}-"))
        try:
            model_dir = Path(self.mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}",
                                                                      dst_path=str(folder / "model")))
            onnx_files = sorted(model_dir.rglob("*.onnx"))
            serving = Path(self.mlflow.artifacts.download_artifacts(run_id=info.run_id, artifact_path=SERVING_PATH,
                                                                    dst_path=str(folder / "serving")))
            metadata = json.loads((serving / "metadata.json").read_text())
            booster = serving / "lightgbm.txt"
            return ServingBundle(name=name, version=version, onnx_bytes=onnx_files[0].read_bytes(),
                                 metadata=metadata, booster_text=booster.read_text() if booster.exists() else None,
                                 aliases=info.aliases)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def upgrade_tracking_schema(tracking_uri: str) -> dict[str, str | None]:
    """Bring MLflow's tables at a database URI to the installed MLflow's schema (its Alembic migrations), as
    after upgrading MLflow; a database without MLflow's tables gets them on first use. Returns the revision found
    and the revision now in place. Take a backup first: MLflow's migrations are not reversible."""
    from mlflow.store.db.utils import (
        _get_latest_schema_revision,
        _get_schema_version,
        _upgrade_db,
        create_sqlalchemy_engine,
    )

    if "://" not in tracking_uri or tracking_uri.split("://", 1)[0].split("+")[0] not in (
            "sqlite", "postgresql", "mysql", "mssql"):
        raise ValueError(f"{tracking_uri!r} is not a database URI: only MLflow's database stores have a schema")
    engine = create_sqlalchemy_engine(tracking_uri)
    try:
        found, head = _get_schema_version(engine), _get_latest_schema_revision()
        if found is None:  # no MLflow tables here yet
            return {"found": None, "now": None}
        if found != head:
            _upgrade_db(engine)
        return {"found": found, "now": _get_schema_version(engine)}
    finally:
        engine.dispose()
