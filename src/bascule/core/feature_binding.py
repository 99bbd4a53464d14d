"""FeatureServiceBinding: the feature service a model version declares, as stored with it.

A model registered with ``feature_service="fraud_features"`` keeps, in its version tags, the
service's name and version, the feature refs it resolved to (``view:feature``), the
feature-view versions behind them, and what a request must carry for the server to look the
features up (the entities' join keys and the on-demand views' request fields). The tags are
plain text so that any registry client can read them::

    bascule.feature_service                 fraud_features
    bascule.feature_service.version         2
    bascule.feature_service.refs            customer_stats:spend_7d,customer_stats:n_txn_7d
    bascule.feature_service.views           customer_stats@v3
    bascule.feature_service.entity_keys     customer_id
    bascule.feature_service.request_fields  amount
    bascule.feature_service.missing         refuse

``missing`` says what the server does when the online store has no usable value for a row
(the entity is absent, its values are older than the TTL, or null): ``refuse`` the request
(the default), or pass ``null``, a missing value (NaN, or no category), to the model, as the
point-in-time join did for such rows in the training set; for models that handle missing
values (gradient-boosted trees, say) and were trained on such rows.

The server serves the refs recorded here (not whatever the service lists later), so a model
always gets the features it was trained with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from bascule.core.errors import InvalidInputError

__all__ = ["MISSING_POLICIES", "TAG_PREFIX", "FeatureServiceBinding", "check_missing_policy"]

TAG_PREFIX: Final = "bascule.feature_service"
"""The tag naming the service; the other tags start with it and a dot."""
MISSING_POLICIES: Final = ("refuse", "null")
"""What to do with rows without usable feature values (see the module docstring)."""


def check_missing_policy(value: object) -> str:
    """Validate a ``missing_features`` policy.

    Raises:
        InvalidInputError: not ``refuse`` or ``null``.
    """
    if value not in MISSING_POLICIES:
        raise InvalidInputError.for_field(
            "missing_features", value, "'refuse' (the default) or 'null'"
        )
    return str(value)


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(p for p in (text or "").split(",") if p)


@dataclass(frozen=True)
class FeatureServiceBinding:
    """A feature service as a model version declares it (see the module docstring).

    Attributes:
        service: The feature service's name.
        version: The version of its definition at registration.
        refs: The features, as ``view:feature`` refs, in the service's order.
        views: The feature views and on-demand views behind them, as ``name@vN``.
        entity_keys: Join keys a request must carry to look the features up.
        request_fields: Request fields the on-demand features need.
        missing: ``refuse`` or ``null``: rows without usable values (see the module docstring).
    """

    service: str
    version: int
    refs: tuple[str, ...]
    views: tuple[str, ...] = ()
    entity_keys: tuple[str, ...] = ()
    request_fields: tuple[str, ...] = ()
    missing: str = "refuse"

    @property
    def features(self) -> tuple[str, ...]:
        """The feature names (the columns a training set from the service has)."""
        return tuple(r.partition(":")[2] or r for r in self.refs)

    def passthrough(self, columns: Sequence[str]) -> tuple[str, ...]:
        """Model input columns the service does not provide: the request sends them."""
        feats = set(self.features)
        return tuple(c for c in columns if c not in feats)

    def required_inputs(self, columns: Sequence[str]) -> tuple[str, ...]:
        """What a request sends when the server looks the features up: the entity keys, the
        request fields, then the model inputs the service does not provide."""
        out = [*self.entity_keys, *self.request_fields]
        out += [c for c in self.passthrough(columns) if c not in out]
        return tuple(dict.fromkeys(out))

    def check_columns(self, columns: Sequence[str], *, model: str) -> None:
        """Check that the service provides at least one of the model's input columns.

        Raises:
            InvalidInputError: none of ``columns`` is a feature of the service (the model
                was probably trained on other names).
        """
        if not set(columns) & set(self.features):
            raise InvalidInputError(
                f"feature service {self.service!r} provides none of the inputs of model "
                f"{model!r}: the model takes {list(columns)}, the service gives "
                f"{list(self.features)}; train on a training set of the service (its feature "
                "names are the column names) or declare another service",
                field="feature_service",
                value=self.service,
                expected=f"a service giving some of {list(columns)}",
            )

    def to_tags(self) -> dict[str, str]:
        """The version tags that record the binding."""
        return {
            TAG_PREFIX: self.service,
            f"{TAG_PREFIX}.version": str(self.version),
            f"{TAG_PREFIX}.refs": ",".join(self.refs),
            f"{TAG_PREFIX}.views": ",".join(self.views),
            f"{TAG_PREFIX}.entity_keys": ",".join(self.entity_keys),
            f"{TAG_PREFIX}.request_fields": ",".join(self.request_fields),
            f"{TAG_PREFIX}.missing": self.missing,
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> FeatureServiceBinding | None:
        """The binding recorded in a version's tags, or None when it declares no service."""
        service = tags.get(TAG_PREFIX)
        if not service:
            return None
        version = tags.get(f"{TAG_PREFIX}.version", "0")
        return cls(
            service=service,
            version=int(version) if version.isdigit() else 0,
            refs=_split(tags.get(f"{TAG_PREFIX}.refs")),
            views=_split(tags.get(f"{TAG_PREFIX}.views")),
            entity_keys=_split(tags.get(f"{TAG_PREFIX}.entity_keys")),
            request_fields=_split(tags.get(f"{TAG_PREFIX}.request_fields")),
            missing="null" if tags.get(f"{TAG_PREFIX}.missing") == "null" else "refuse",
        )
