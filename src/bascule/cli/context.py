"""What every command needs: the settings file given by ``--config``, and services built on
demand.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bascule.core.settings import Settings
    from bascule.wiring import Services

__all__ = ["config_path", "get_services", "get_settings", "set_config_path"]

_state: dict[str, object] = {"config": None, "services": None}


def set_config_path(path: Path | None) -> None:
    _state["config"] = path


def config_path() -> Path | None:
    value = _state["config"]
    return value if isinstance(value, Path) else None


def get_settings() -> Settings:
    """Settings from ``--config`` / ``bascule.yaml`` and ``BASCULE_*``.

    This is the CLI's composition root.
    """
    from bascule.core.settings import load_settings

    return load_settings(config_path())


def get_services() -> Services:
    """Services built once per command."""
    from bascule.wiring import Services, build_services

    current = _state["services"]
    if isinstance(current, Services):
        return current
    services = build_services(get_settings())
    _state["services"] = services
    return services
