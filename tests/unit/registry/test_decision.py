"""DecisionRule: the labels a binary classifier is served with at its stored threshold."""

from __future__ import annotations

import numpy as np
import pytest

from bascule.core.errors import InvalidInputError
from bascule.core.schema import ColumnSpec, ModelSignature, TensorSpec
from bascule.registry.decision import TAG_POSITIVE_LABEL, TAG_THRESHOLD, DecisionRule

PROBA = np.array([[0.9, 0.1], [0.7, 0.3], [0.5, 0.5], [0.2, 0.8]])


def signature(classes: list[int] | list[str], task: str = "classification") -> ModelSignature:
    return ModelSignature(
        layout="tensor",
        columns=[ColumnSpec(name="x", datatype="FP64", kind="numeric")],
        inputs=[TensorSpec(name="x", datatype="FP64", shape=[-1, 1])],
        outputs=[
            TensorSpec(name="label", datatype="INT64", shape=[-1]),
            TensorSpec(name="probabilities", datatype="FP32", shape=[-1, len(classes)]),
        ],
        task=task,
        classes=classes,
        proba_output="probabilities" if task == "classification" else None,
    )


def test_rows_at_or_above_the_threshold_get_the_second_class_by_default():
    rule = DecisionRule.for_classes(0.3, [0, 1], None, classify=True)

    labels = rule.labels(PROBA)

    assert [0, 1, 1, 1] == labels.tolist()
    assert np.int64 == labels.dtype


def test_a_named_positive_class_is_the_one_the_threshold_applies_to():
    rule = DecisionRule.for_classes(0.6, ["fraud", "ok"], "fraud", classify=True)

    labels = rule.labels(PROBA)

    assert ["fraud", "fraud", "ok", "ok"] == labels.tolist()
    assert object == labels.dtype


@pytest.mark.parametrize(
    ("classes", "positive", "classify", "field"),
    [
        ([0, 1, 2], None, True, TAG_THRESHOLD),
        ([0, 1], None, False, TAG_THRESHOLD),
        (None, None, True, TAG_THRESHOLD),
        ([0, 1], "2", True, TAG_POSITIVE_LABEL),
    ],
)
def test_a_rule_the_model_cannot_follow_is_refused(classes, positive, classify, field):
    with pytest.raises(InvalidInputError, match=field):
        DecisionRule.for_classes(0.5, classes, positive, classify=classify)


def test_a_version_without_a_threshold_has_no_rule():
    assert DecisionRule.of_version({TAG_POSITIVE_LABEL: "1"}, signature([0, 1])) is None


def test_a_versions_tags_set_its_rule():
    tags = {TAG_THRESHOLD: "0.25", TAG_POSITIVE_LABEL: "0"}

    rule = DecisionRule.of_version(tags, signature([0, 1]))

    assert rule is not None
    assert (0.25, 0) == (rule.threshold, rule.positive)
    assert [0, 0, 0, 1] == rule.labels(PROBA).tolist()  # class 0 at p >= 0.25, else 1


def test_a_threshold_on_a_regressor_is_refused():
    with pytest.raises(InvalidInputError, match="binary classifier"):
        DecisionRule.of_version({TAG_THRESHOLD: "0.5"}, signature([0, 1], task="regression"))
