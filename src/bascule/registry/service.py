"""RegistryService: register fitted models as ONNX, move aliases, resolve references, load
predictors.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bascule.core.clock import Clock, now_ms
from bascule.core.errors import ConfigError, InvalidInputError
from bascule.core.feature_binding import FeatureServiceBinding, check_missing_policy
from bascule.core.records import ModelEvent, ModelVersion, RegisteredModel
from bascule.core.refs import ModelRef, check_name
from bascule.core.schema import ModelSignature
from bascule.registry.feature_tags import FeatureLineageLike, version_tags
from bascule.registry.provenance import git_commit
from bascule.store.artifacts.base import ArtifactStore
from bascule.store.db.models import ModelRepository

if TYPE_CHECKING:
    import pandas as pd

    from bascule.registry.predictor import OnnxPredictor

__all__ = ["FeatureLineageLike", "FeatureServiceResolver", "RegistryService"]

PARITY_ATOL = 1e-4
SAMPLE_MAX_ROWS = 10_000

FeatureServiceResolver = Callable[[str], FeatureServiceBinding]
"""Feature service name → its binding (``FeatureStore.bind_service``, given by the wiring).

Raises ``FeatureServiceNotFoundError`` listing the services for an unknown name."""


class RegistryService:
    """The model registry.

    Versions are immutable; aliases move atomically; everything is audited.
    """

    def __init__(
        self,
        models: ModelRepository,
        artifacts: ArtifactStore,
        clock: Clock,
        *,
        actor: str,
        intra_op_threads: int = 1,
        feature_services: FeatureServiceResolver | None = None,
    ) -> None:
        self._models = models
        self._artifacts = artifacts
        self._clock = clock
        self._actor = actor
        self._threads = intra_op_threads
        self._feature_services = feature_services

    def use_feature_services(self, resolver: FeatureServiceResolver) -> None:
        """Resolve ``feature_service=`` names at registration with ``resolver`` (the wiring
        calls this with the feature store's ``bind_service``)."""
        self._feature_services = resolver

    def _bind(
        self, feature_service: str | FeatureServiceBinding | None, missing: str | None
    ) -> FeatureServiceBinding | None:
        if missing is not None:
            check_missing_policy(missing)
        if feature_service is None:
            if missing is not None:
                raise InvalidInputError.for_field(
                    "missing_features", missing, "no value without a feature_service"
                )
            return None
        if isinstance(feature_service, FeatureServiceBinding):
            binding = feature_service
        elif self._feature_services is None:
            raise ConfigError(
                f"cannot register with feature service {feature_service!r}: this registry has "
                "no feature store (build it with bascule.wiring.build_services)"
            )
        else:
            binding = self._feature_services(feature_service)
        return binding if missing is None else dataclasses.replace(binding, missing=missing)

    # -- registration ---------------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: Any,
        *,
        sample: Any,
        run_id: str | None = None,
        dataset_digest: str | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
        reason: str = "",
        actor: str | None = None,
        feature_service: str | FeatureServiceBinding | None = None,
        feature_lineage: FeatureLineageLike | None = None,
        missing_features: str | None = None,
    ) -> ModelVersion:
        """Convert ``model`` to ONNX, prove parity on ``sample``, store it, and number a new
        version.

        Artifacts are written before the version row, in one transaction with its audit
        event, so a crash at any point leaves no version without its artifacts.

        Args:
            feature_service: The feature service the model's inputs come from: the server
                then accepts requests carrying only the entity keys and request fields, and
                looks the features up online. Its refs, view versions and required inputs
                are stored as version tags (see :mod:`bascule.core.feature_binding`).
            feature_lineage: The ``lineage`` of the training set the model was trained on
                (``store.get_historical_features(...).lineage``): its tags are stored and its
                digest becomes the version's data-set digest unless one is given.
            missing_features: With ``feature_service``: ``"refuse"`` (the default) answers
                a request with a row whose features are not in the online store (or past the
                TTL, or null) with an error; ``"null"`` gives the model missing values there,
                as the training set had, for models trained on such rows.

        Raises:
            InvalidInputError: bad name, empty sample, non-numeric metric; a feature service
                that gives none of the model's inputs, or a training set whose features are
                not the ones the service would serve.
            FeatureServiceNotFoundError: an unknown feature service (the message lists them).
            UnsupportedModelError: no converter handles the model type.
            ParityError: the ONNX model disagrees with the source on the sample.
        """
        from bascule.registry.converters import convert
        from bascule.registry.parity import check_parity
        from bascule.registry.predictor import OnnxPredictor
        from bascule.registry.profile import build_profile, sample_rows, to_frame

        check_name(name, field="model name")
        clean_metrics = _check_metrics(metrics or {})
        binding = self._bind(feature_service, missing_features)
        if sample is None or len(sample) == 0:
            raise InvalidInputError.for_field(
                "sample", sample, "a non-empty DataFrame or 2-D array of model inputs"
            )
        converted = convert(model, sample)
        predictor = OnnxPredictor(converted.onnx_bytes, converted.signature, name=name)
        report = check_parity(model, predictor, sample, atol=PARITY_ATOL)
        frame = to_frame(sample, converted.signature)
        profile = build_profile(frame, converted.signature)
        stored_sample = sample_rows(frame, max_rows=SAMPLE_MAX_ROWS, seed=0)
        feature_tags = version_tags(name, converted.signature, binding, feature_lineage)
        if feature_lineage is not None and dataset_digest is None:
            dataset_digest = feature_lineage.digest

        return self._store_version(
            name,
            onnx_bytes=converted.onnx_bytes,
            signature=converted.signature,
            flavor=converted.flavor,
            opset=converted.opset,
            profile=profile,
            sample=stored_sample,
            metrics=clean_metrics,
            tags={
                **(tags or {}),
                **feature_tags,
                "parity_max_abs_diff": f"{report.max_abs_diff:.3g}",
            },
            run_id=run_id,
            dataset_digest=dataset_digest,
            description=description,
            reason=reason or "registered",
            actor=actor,
        )

    def _store_version(
        self,
        name: str,
        *,
        onnx_bytes: bytes,
        signature: ModelSignature,
        flavor: str,
        opset: int,
        profile: dict[str, Any],
        sample: pd.DataFrame,
        metrics: dict[str, float],
        tags: dict[str, str],
        run_id: str | None,
        dataset_digest: str | None,
        description: str,
        reason: str,
        actor: str | None,
    ) -> ModelVersion:
        # Blobs first (content-addressed, idempotent), then the version row and its audit
        # event in one transaction: a crash in between leaves only unreferenced blobs.
        model_digest = self._artifacts.put(onnx_bytes)
        profile_digest = self._artifacts.put(json.dumps(profile, sort_keys=True).encode())
        buf = io.BytesIO()
        sample.to_parquet(buf, index=False)
        sample_digest = self._artifacts.put(buf.getvalue())
        return self._models.add_version(
            name=name,
            now=now_ms(self._clock),
            actor=actor or self._actor,
            reason=reason,
            fields={
                "digest": model_digest,
                "flavor": flavor,
                "task": signature.task,
                "signature": signature.model_dump(mode="json"),
                "profile_digest": profile_digest,
                "sample_digest": sample_digest,
                "metrics": metrics,
                "tags": {**tags, "onnx_opset": str(opset)},
                "run_id": run_id,
                "dataset_digest": dataset_digest,
                "git_commit": git_commit(),
                "description": description,
            },
        )

    def register_onnx_file(
        self,
        name: str,
        path: Path,
        *,
        sample: Path,
        description: str = "",
        actor: str | None = None,
        feature_service: str | FeatureServiceBinding | None = None,
        missing_features: str | None = None,
    ) -> ModelVersion:
        """Register a model that is already ONNX; the sample (Parquet) must run through it.

        There is no source model to compare with, so instead of a parity check the model
        must produce finite outputs for every sample row. ``feature_service`` and
        ``missing_features`` are as in :meth:`register`.

        Raises:
            InvalidInputError: unreadable files, not ONNX, or the model fails on the sample;
                a feature service that gives none of the model's inputs.
            FeatureServiceNotFoundError: an unknown feature service (the message lists them).
        """
        import numpy as np
        import pandas as pd

        from bascule.registry.onnx_signature import signature_from_onnx
        from bascule.registry.predictor import OnnxPredictor
        from bascule.registry.profile import build_profile, sample_rows

        check_name(name, field="model name")
        binding = self._bind(feature_service, missing_features)
        if not path.is_file():
            raise InvalidInputError.for_field("model file", str(path), "an existing ONNX file")
        if not sample.is_file():
            raise InvalidInputError.for_field("sample", str(sample), "an existing Parquet file")
        try:
            frame = pd.read_parquet(sample)
        except (OSError, ValueError) as exc:
            raise InvalidInputError.for_field(
                "sample", str(sample), f"a Parquet file ({exc})"
            ) from None
        if frame.empty:
            raise InvalidInputError.for_field("sample", str(sample), "at least one row")
        onnx_bytes = path.read_bytes()
        signature = signature_from_onnx(onnx_bytes, column_names=[str(c) for c in frame.columns])
        predictor = OnnxPredictor(onnx_bytes, signature, name=name)
        outputs = predictor.run(predictor.to_feeds(frame))
        for key, value in outputs.items():
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise InvalidInputError.for_field(
                    f"output {key!r} on the sample", "non-finite values", "finite values"
                )
        frame = frame[signature.column_names]
        profile = build_profile(frame, signature)
        return self._store_version(
            name,
            onnx_bytes=onnx_bytes,
            signature=signature,
            flavor="onnx",
            opset=max((o.version for o in _opsets(onnx_bytes)), default=0),
            profile=profile,
            sample=sample_rows(frame, max_rows=SAMPLE_MAX_ROWS, seed=0),
            metrics={},
            tags=version_tags(name, signature, binding, None),
            run_id=None,
            dataset_digest=None,
            description=description,
            reason="registered from an ONNX file",
            actor=actor,
        )

    # -- aliases and history --------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str = "",
        actor: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> ModelEvent:
        """Point ``alias`` at ``version`` in one transaction; audited with from → to.

        Raises:
            InvalidInputError, ModelNotFoundError, VersionNotFoundError.
        """
        check_name(alias, field="alias")
        if alias == "latest":
            raise InvalidInputError.for_field(
                "alias", alias, "a name other than 'latest' (it always means the newest version)"
            )
        _check_version(version)
        return self._models.set_alias(
            name,
            alias,
            version,
            now=now_ms(self._clock),
            actor=actor or self._actor,
            reason=reason,
            details=details,
        )

    def delete_alias(
        self, name: str, alias: str, *, reason: str = "", actor: str | None = None
    ) -> ModelEvent:
        """Raises: ModelNotFoundError, AliasNotFoundError."""
        return self._models.delete_alias(
            name, alias, now=now_ms(self._clock), actor=actor or self._actor, reason=reason
        )

    def record_event(
        self,
        name: str,
        kind: str,
        *,
        reason: str,
        version: int | None = None,
        details: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> ModelEvent:
        """Append a decision (gate, rollback…) to a model's audit history.

        Raises:
            ModelNotFoundError.
        """
        return self._models.record_event(
            name,
            kind,
            now=now_ms(self._clock),
            actor=actor or self._actor,
            reason=reason,
            version=version,
            details=details,
        )

    def history(self, name: str) -> list[ModelEvent]:
        """Raises: ModelNotFoundError."""
        return self._models.history(name)

    # -- reads ----------------------------------------------------------------------------------

    def list_models(self) -> list[RegisteredModel]:
        return self._models.list_models()

    def get_model(self, name: str) -> RegisteredModel:
        """Raises: ModelNotFoundError."""
        return self._models.get_model(name)

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Raises: ModelNotFoundError."""
        return self._models.list_versions(name)

    def resolve(self, ref: ModelRef | str) -> ModelVersion:
        """The version a reference names (``name`` means the newest version).

        Raises:
            InvalidInputError, ModelNotFoundError, VersionNotFoundError, AliasNotFoundError.
        """
        r = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if r.alias is not None:
            version = self._models.alias_version(r.name, r.alias)
        elif r.version is not None:
            version = r.version
        else:
            version = self._models.get_model(r.name).latest_version
        return self._models.get_version(r.name, version)

    def load(self, ref: ModelRef | str) -> OnnxPredictor:
        """An onnxruntime-backed predictor for the referenced version (digest verified on read).

        Raises:
            NotFoundError subclasses, IntegrityError (corrupted blob).
        """
        from bascule.registry.predictor import OnnxPredictor

        mv = self.resolve(ref)
        blob = self._artifacts.get(mv.digest)
        signature = ModelSignature.model_validate(mv.signature)
        return OnnxPredictor(
            blob, signature, name=mv.name, version=mv.version, intra_op_threads=self._threads
        )

    def model_bytes(self, mv: ModelVersion) -> bytes:
        """The ONNX bytes of a version, verified. Raises: IntegrityError, ArtifactNotFoundError."""
        return self._artifacts.get(mv.digest)

    def profile(self, mv: ModelVersion) -> dict[str, Any]:
        """The reference profile stored with a version (per-feature summaries)."""
        if mv.profile_digest is None:
            return {}
        data: dict[str, Any] = json.loads(self._artifacts.get(mv.profile_digest))
        return data

    def reference_sample(self, mv: ModelVersion) -> pd.DataFrame:
        """The stored sample (up to 10,000 rows) the version was registered with."""
        import pandas as pd

        if mv.sample_digest is None:
            return pd.DataFrame()
        return pd.read_parquet(io.BytesIO(self._artifacts.get(mv.sample_digest)))


def _check_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    import numbers

    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidInputError.for_field(f"metric {key!r}", value, "a real number")
        out[str(key)] = float(value)
    return out


def _opsets(onnx_bytes: bytes) -> list[Any]:
    import onnx

    return list(onnx.load_model_from_string(onnx_bytes).opset_import)


def _check_version(version: object) -> None:
    """Raises: InvalidInputError unless ``version`` is a positive integer (bools are not)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInputError.for_field("version", version, "a positive integer")
