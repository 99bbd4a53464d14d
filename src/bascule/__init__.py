"""bascule: the MLOps loop in one package.

Importing ``bascule`` is cheap: the SDK functions load their heavy dependencies
(pandas, SQLAlchemy, onnxruntime) on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bascule._version import __version__

if TYPE_CHECKING:
    from bascule.client import Client
    from bascule.sdk import load_model, register_model, set_alias, start_run

__all__ = ["Client", "__version__", "load_model", "register_model", "set_alias", "start_run"]

_LAZY = {"load_model", "register_model", "set_alias", "start_run"}


def __getattr__(name: str) -> Any:
    if name == "Client":
        from bascule.client import Client

        return Client
    if name in _LAZY:
        from bascule import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'bascule' has no attribute {name!r}")
