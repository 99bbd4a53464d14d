"""The labels a binary classifier is served with at its stored decision threshold.

The retraining pipeline stores the cost-minimising probability threshold with a version
(tags ``decision_threshold`` and ``positive_label``). The inference server labels requests
by it, and monitoring labels the version's reference sample by the same rule, so a threshold
chosen for cost never reads as prediction drift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ModelSignature

__all__ = ["TAG_POSITIVE_LABEL", "TAG_THRESHOLD", "DecisionRule"]

TAG_THRESHOLD = "decision_threshold"
"""Version tag holding the decision threshold (``repr`` of a float): a row is positive when
its positive-class probability is ``>=`` it. Also stored as the metric of the same name."""
TAG_POSITIVE_LABEL = "positive_label"
"""Version tag holding the positive class the threshold applies to (as text)."""


@dataclass(frozen=True)
class DecisionRule:
    """Label ``choices[1]`` where the positive class's probability is ``>= threshold``,
    else ``choices[0]``.

    Attributes:
        threshold: The probability threshold.
        positive: The column of the positive class in the probabilities.
        choices: ``[negative label, positive label]`` (int64 for integer classes).
    """

    threshold: float
    positive: int
    choices: np.ndarray

    @classmethod
    def for_classes(
        cls,
        threshold: float,
        classes: Sequence[int] | Sequence[str] | None,
        positive_label: str | None,
        *,
        classify: bool,
    ) -> DecisionRule:
        """The rule for a model's classes; the positive class defaults to the second.

        Raises:
            InvalidInputError: not a binary classifier, or an unknown positive label.
        """
        if not classify or classes is None or len(classes) != 2:
            raise InvalidInputError.for_field(
                TAG_THRESHOLD, classes, "a binary classifier (two classes) to apply it to"
            )
        texts = [str(c) for c in classes]
        wanted = positive_label if positive_label is not None else texts[1]
        if wanted not in texts:
            raise InvalidInputError.for_field(TAG_POSITIVE_LABEL, positive_label, f"one of {texts}")
        index = texts.index(wanted)
        choices = np.asarray([classes[1 - index], classes[index]], dtype=object)
        if all(isinstance(c, int) for c in classes):
            choices = choices.astype(np.int64)
        return cls(threshold, index, choices)

    @classmethod
    def of_version(cls, tags: Mapping[str, str], signature: ModelSignature) -> DecisionRule | None:
        """The rule a version's tags set, or None when it has no threshold.

        Raises:
            InvalidInputError: a threshold on a model that is not a binary classifier, or a
                positive label that is not one of its classes.
        """
        threshold = tags.get(TAG_THRESHOLD)
        if threshold is None:
            return None
        classify = signature.task == "classification" and signature.proba_output is not None
        return cls.for_classes(
            float(threshold), signature.classes, tags.get(TAG_POSITIVE_LABEL), classify=classify
        )

    def labels(self, proba: np.ndarray) -> np.ndarray:
        """The label of each row of ``proba`` (rows x classes)."""
        labels: np.ndarray = self.choices[
            (proba[:, self.positive] >= self.threshold).astype(np.intp)
        ]
        return labels
