"""ServedModel: one registered model version, loaded, warmed up and ready for V2 requests.

It wraps :class:`bascule.registry.predictor.OnnxPredictor` (which owns the onnxruntime
session) and adds what serving needs:

* mapping V2 input tensors to the model's feeds, whatever layout the ONNX graph itself
  takes (:mod:`bascule.serving.feeds`);
* running a batch of such feeds in one onnxruntime call and splitting the results;
* the outputs clients get: ``label`` and ``probabilities`` (per class, in ``classes``
  order) for classifiers, ``prediction`` for regressors;
* warm-up on load with the version's stored sample (or zeros), so the first request
  does not pay for onnxruntime's lazy initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from bascule.core.errors import BasculeError, InvalidInputError
from bascule.core.feature_binding import FeatureServiceBinding
from bascule.core.outputs import OutputTensor
from bascule.core.schema import ModelSignature
from bascule.core.tensor_data import DATATYPES
from bascule.core.tensors import RequestedOutput, Tensor
from bascule.registry.decision import TAG_POSITIVE_LABEL, TAG_THRESHOLD, DecisionRule
from bascule.serving.feeds import MISSING_TEXT, FeedMapper, Feeds

if TYPE_CHECKING:
    import pandas as pd

    from bascule.core.records import ModelVersion
    from bascule.registry.predictor import OnnxPredictor
    from bascule.registry.service import RegistryService

__all__ = ["Outputs", "ServedModel", "load_served_model"]

Outputs = dict[str, np.ndarray]
"""Served output name → array, one row per input row."""


class ServedModel:
    """A model version as the server runs it: V2 tensors in, ``label``/``probabilities`` out.

    Thread-safe: :meth:`run_batch` runs in the batcher's thread while the event loop
    calls :meth:`feeds` and :meth:`outputs`; none of them mutates the object.

    Args:
        predictor: The loaded onnxruntime predictor of the version.
        decision_threshold: For binary classifiers, the probability of ``positive_label`` at
            or above which the served ``label`` is that class (the cost-minimising threshold
            the retraining pipeline stores with the version); None serves the most likely class.
        positive_label: The positive class, as text (matched against the classes' text).
        feature_binding: The feature service the version declares: requests may then send
            only entity keys and request fields (see :mod:`bascule.serving.features`).

    Raises:
        InvalidInputError: a threshold for a model that is not a binary classifier, or a
            positive label that is not one of its classes.
    """

    def __init__(
        self,
        predictor: OnnxPredictor,
        *,
        decision_threshold: float | None = None,
        positive_label: str | None = None,
        feature_binding: FeatureServiceBinding | None = None,
    ) -> None:
        self._predictor = predictor
        self.feature_binding = feature_binding
        sig = predictor.signature
        self._signature = sig
        self.name = predictor.name
        self.version = predictor.version
        self._columns = sig.columns
        self._column_names = sig.column_names
        self._classes = sig.classes
        self._classify = sig.task == "classification" and sig.proba_output is not None
        self._label_strings = bool(self._classes) and isinstance((self._classes or [None])[0], str)
        self._output_names = ["label", "probabilities"] if self._classify else ["prediction"]
        self._proba_columns = [f"proba_{c}" for c in self._classes or []]
        self._decision: DecisionRule | None = None
        if decision_threshold is not None:
            self._decision = DecisionRule.for_classes(
                decision_threshold, self._classes, positive_label, classify=self._classify
            )
        self._mapper = FeedMapper(sig, name=self.name, version=self.version)

    # -- description -----------------------------------------------------------------------------

    @property
    def decision_threshold(self) -> float | None:
        """The probability threshold the served ``label`` follows, if the version has one."""
        return self._decision.threshold if self._decision is not None else None

    @property
    def signature(self) -> ModelSignature:
        """The version's signature."""
        return self._signature

    @property
    def output_names(self) -> list[str]:
        """Outputs this model returns: ``label`` and ``probabilities``, or ``prediction``."""
        return list(self._output_names)

    def input_metadata(self) -> list[dict[str, Any]]:
        """V2 metadata of the inputs: the ONNX graph's own inputs (from the signature)."""
        return [t.model_dump() for t in self._signature.inputs]

    def output_metadata(self) -> list[dict[str, Any]]:
        """V2 metadata of the served outputs."""
        if not self._classify:
            return [{"name": "prediction", "datatype": "FP32", "shape": [-1]}]
        label_type = "BYTES" if self._label_strings else "INT64"
        n = len(self._classes or [])
        return [
            {"name": "label", "datatype": label_type, "shape": [-1]},
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [-1, n],
                "parameters": {"classes": list(self._classes or [])},
            },
        ]

    def parameters(self) -> dict[str, Any]:
        """bascule's additions to the model metadata: task, classes and feature columns, and
        for a version declaring a feature service, ``feature_service``: its name, refs and
        views, and ``required_inputs``, what a request sends for the server to look the
        features up (entity keys, request fields, inputs the service does not give)."""
        out: dict[str, Any] = {
            "task": self._signature.task,
            "classes": list(self._classes) if self._classes is not None else None,
            "layout": self._signature.layout,
            "columns": [c.model_dump() for c in self._columns],
        }
        binding = self.feature_binding
        if binding is not None:
            names = self._column_names
            out["feature_service"] = {
                "name": binding.service,
                "version": binding.version,
                "refs": list(binding.refs),
                "views": list(binding.views),
                "entity_keys": list(binding.entity_keys),
                "request_fields": list(binding.request_fields),
                "passthrough": list(binding.passthrough(names)),
                "required_inputs": list(binding.required_inputs(names)),
            }
        return out

    # -- requests --------------------------------------------------------------------------------

    def feeds(self, inputs: Sequence[Tensor]) -> Feeds:
        """Map decoded V2 input tensors to the ONNX feeds (see :class:`FeedMapper`).

        Raises:
            InvalidInputError: unknown or missing inputs, a wrong shape or datatype, rows
                that differ between inputs, or an empty batch; the message names the input,
                what was sent and what the model expects.
        """
        return self._mapper.feeds(inputs)

    def columns(self, requests: Sequence[Feeds]) -> dict[str, np.ndarray]:
        """The feeds of several requests as one 1-D array per feature column, the rows of
        each request after the last's (for the prediction log, by its flusher thread)."""
        if self._signature.layout == "columns":
            if len(requests) == 1:
                return {name: arr.reshape(-1) for name, arr in requests[0].items()}
            return {
                name: np.concatenate([feeds[name].reshape(-1) for feeds in requests])
                for name in requests[0]
            }
        name = self._signature.inputs[0].name
        matrices = [feeds[name] for feeds in requests]
        return dict(zip(self._column_names, _transposed(matrices), strict=True))

    def log_outputs(self, results: Sequence[Outputs]) -> dict[str, np.ndarray]:
        """The outputs of several requests as one 1-D array per column (for the prediction
        log): ``label`` and ``proba_<class>`` per class, or ``prediction``
        (``prediction_<i>`` when 2-D)."""
        if not self._classify:
            predictions = [r["prediction"] for r in results]
            if predictions[0].ndim == 1:
                return {"prediction": _joined(predictions)}
            return {f"prediction_{i}": col for i, col in enumerate(_transposed(predictions))}
        probabilities = _transposed([r["probabilities"] for r in results])
        out = dict(zip(self._proba_columns, probabilities, strict=True))
        out["label"] = _joined([r["label"] for r in results])
        return out

    def run_batch(self, items: list[Feeds]) -> list[Outputs | BasculeError]:
        """Run several requests' feeds in one onnxruntime call; the batcher's ``fn``.

        A batch that onnxruntime rejects is retried request by request, so one bad
        request fails alone.

        Returns:
            One result per item, in order: its outputs, or the error it caused.
        """
        if len(items) == 1:
            try:
                return [self._run(items[0])]
            except BasculeError as exc:
                return [exc]
        try:
            merged = {k: np.concatenate([it[k] for it in items]) for k in items[0]}
            out = self._run(merged)
        except (BasculeError, ValueError):
            return [r for it in items for r in self.run_batch([it])]
        results: list[Outputs | BasculeError] = []
        start = 0
        for it in items:
            stop = start + next(iter(it.values())).shape[0]
            results.append({k: v[start:stop] for k, v in out.items()})
            start = stop
        return results

    def _run(self, feeds: Feeds) -> Outputs:
        sig = self._signature
        raw = self._predictor.run(feeds)
        label = np.asarray(raw[sig.label_output])
        if label.ndim == 2 and label.shape[1] == 1:
            label = label.ravel()
        if not self._classify:
            return {"prediction": label.astype(np.float32, copy=False)}
        if label.dtype.kind in "iu" and self._label_strings:
            label = np.asarray(self._classes, dtype=object)[label]
        elif label.dtype.kind in "iu":
            label = label.astype(np.int64, copy=False)
        else:
            label = label.astype(object, copy=False)
        proba = np.asarray(raw[sig.proba_output or ""], dtype=np.float32)
        if self._decision is not None:
            label = self._decision.labels(proba).astype(label.dtype, copy=False)
        return {"label": label, "probabilities": proba}

    def outputs(
        self, result: Outputs, requested: Sequence[RequestedOutput] | None, binary: bool
    ) -> list[OutputTensor]:
        """The V2 output tensors a request asked for.

        Raises:
            InvalidInputError: an output name the model does not return.
        """
        if requested is None:
            return [
                OutputTensor(name, _datatype(result[name]), result[name], binary)
                for name in self._output_names
            ]
        self.check_requested(requested)
        tensors = []
        for want in requested:
            array = result[want.name]
            tensors.append(OutputTensor(want.name, _datatype(array), array, want.binary or binary))
        return tensors

    def check_requested(self, requested: Sequence[RequestedOutput] | None) -> None:
        """Check that the model returns every requested output (before running it).

        Raises:
            InvalidInputError: an output name the model does not return.
        """
        for want in requested or ():
            if want.name not in self._output_names:
                raise InvalidInputError(
                    f"output {want.name!r} is not an output of model '{self.name}'; expected "
                    f"one of {self._output_names}",
                    field=f"output {want.name!r}",
                    value=want.name,
                    expected=str(self._output_names),
                )

    # -- warm-up ---------------------------------------------------------------------------------

    def warm_up(self, sample: pd.DataFrame | None, *, max_rows: int = 64) -> None:
        """Run the model on one row and on ``max_rows`` rows, and check what comes out.

        Raises:
            InvalidInputError: the model fails on its sample, or returns the wrong number of
                rows or non-finite probabilities.
        """
        for rows in sorted({1, max(1, max_rows)}):
            feeds = self._warm_feeds(sample, rows)
            n = next(iter(feeds.values())).shape[0]
            out = self._run(feeds)
            for name, arr in out.items():
                if arr.shape[0] != n:
                    raise InvalidInputError(
                        f"warm-up of model '{self.name}' version {self.version}: output "
                        f"{name!r} has {arr.shape[0]} rows for {n} input rows",
                        field=name,
                    )
            proba = out.get("probabilities")
            if proba is not None and not np.isfinite(proba).all():
                raise InvalidInputError(
                    f"warm-up of model '{self.name}' version {self.version}: probabilities "
                    "are not finite",
                    field="probabilities",
                )

    def _warm_feeds(self, sample: pd.DataFrame | None, rows: int) -> Feeds:
        if sample is not None and len(sample):
            reps = -(-rows // len(sample))
            frame = sample if reps == 1 else sample.iloc[np.tile(np.arange(len(sample)), reps)]
            return self._predictor.to_feeds(frame.iloc[:rows])
        feeds: Feeds = {}
        for spec in self._signature.inputs:
            shape = [rows if d < 0 else d for d in spec.shape] or [rows]
            shape[0] = rows
            if spec.datatype == "BYTES":
                feeds[spec.name] = np.full(shape, MISSING_TEXT, dtype=object)
            else:
                feeds[spec.name] = np.zeros(shape, dtype=DATATYPES[spec.datatype])
        return feeds


def _datatype(array: np.ndarray) -> str:
    return "BYTES" if array.dtype.kind in "OUS" else _DTYPE_NAMES[array.dtype]


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _transposed(blocks: list[np.ndarray]) -> np.ndarray:
    """2-D row blocks (one per request, same columns and dtype) stacked and transposed in
    one pass: row ``j`` of the result is column ``j`` of every block, contiguous, which the
    log writes as it is (one Arrow chunk per column), where stacking first and then copying
    the transpose would read and write everything twice."""
    rows = sum(block.shape[0] for block in blocks)
    out = np.empty((blocks[0].shape[1], rows), dtype=blocks[0].dtype)
    np.concatenate([block.T for block in blocks], axis=1, out=out)
    return out


_DTYPE_NAMES: Final = {v: k for k, v in DATATYPES.items()}


def load_served_model(
    registry: RegistryService,
    mv: ModelVersion,
    *,
    intra_op_threads: int = 1,
    warm_rows: int = 64,
) -> ServedModel:
    """Load a registered version with onnxruntime and warm it up (blocking; run off the loop).

    Args:
        registry: Where the version's ONNX bytes and sample are read from.
        mv: The version to load.
        intra_op_threads: onnxruntime threads inside one operator.
        warm_rows: Rows of the larger warm-up batch (the batcher's largest batch).

    Returns:
        The warmed model.

    Raises:
        IntegrityError: the stored bytes are corrupted.
        NotFoundError: a blob is missing.
        InvalidInputError: onnxruntime cannot load the model, or warm-up fails.
    """
    from bascule.registry.predictor import OnnxPredictor

    blob = registry.model_bytes(mv)
    signature = ModelSignature.model_validate(mv.signature)
    predictor = OnnxPredictor(
        blob, signature, name=mv.name, version=mv.version, intra_op_threads=intra_op_threads
    )
    sample = registry.reference_sample(mv) if mv.sample_digest else None
    threshold = mv.tags.get(TAG_THRESHOLD)
    model = ServedModel(
        predictor,
        decision_threshold=float(threshold) if threshold is not None else None,
        positive_label=mv.tags.get(TAG_POSITIVE_LABEL),
        feature_binding=FeatureServiceBinding.from_tags(mv.tags),
    )
    model.warm_up(sample, max_rows=warm_rows)
    return model
