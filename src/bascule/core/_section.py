"""The base of every settings section: unknown keys are errors, values are frozen, and each
field's docstring is its description (pydantic's ``use_attribute_docstrings``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    """A section of the one ``Settings`` object (``server:``, ``serving:``, ``monitoring:``…)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
