"""The version tags that tie a registered model to its features: the feature service it is
served with, and the lineage of the training set it was fitted on.

Registration refuses a model whose served features would differ from its training features
(training/serving skew): each model input the service gives must come from the same
``view:feature`` ref as in the training set.
"""

from __future__ import annotations

from typing import Protocol

from bascule.core.errors import InvalidInputError
from bascule.core.feature_binding import FeatureServiceBinding
from bascule.core.schema import ModelSignature

__all__ = ["FeatureLineageLike", "version_tags"]


class FeatureLineageLike(Protocol):
    """What a training set built by the feature store records (``TrainingSet.lineage``)."""

    @property
    def refs(self) -> tuple[str, ...]:
        """The ``view:feature`` refs of the training set."""
        ...

    @property
    def digest(self) -> str:
        """sha256 over the refs, view versions and data fingerprints."""
        ...

    def tags(self) -> dict[str, str]:
        """Short tags: ``features.refs``, ``features.views``, ``features.digest``."""
        ...


def version_tags(
    name: str,
    signature: ModelSignature,
    binding: FeatureServiceBinding | None,
    lineage: FeatureLineageLike | None,
) -> dict[str, str]:
    """The version tags recording the feature service and the training set's lineage.

    Raises:
        InvalidInputError: the service gives none of the model's inputs, or a model input
            the service gives came from another feature in the training set.
    """
    tags = dict(lineage.tags()) if lineage is not None else {}
    if binding is None:
        return tags
    columns = signature.column_names
    binding.check_columns(columns, model=name)
    if lineage is not None:
        served = {r.partition(":")[2]: r for r in binding.refs}
        trained = {r.partition(":")[2]: r for r in lineage.refs}
        skew = [
            f"{c!r} ({served[c]} served, {trained.get(c, 'absent')} in training)"
            for c in columns
            if c in served and trained.get(c) != served[c]
        ]
        if skew:
            raise InvalidInputError(
                f"model {name!r} would be served other features than it was trained on: "
                f"{', '.join(skew)}; build the training set from feature service "
                f"{binding.service!r} (get_historical_features(entity_df, "
                f"{binding.service!r}))",
                field="feature_lineage",
                value=list(lineage.refs),
                expected=f"the refs of feature service {binding.service!r}",
            )
    return {**tags, **binding.to_tags()}
