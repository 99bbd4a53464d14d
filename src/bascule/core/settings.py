"""The one settings object, and the one function that reads the outside world for it.

Sources, highest priority first (as pydantic-settings documents "field value priority"):

1. keyword arguments to ``Settings(...)`` (tests, composition roots);
2. ``BASCULE_*`` environment variables, ``__`` for nesting
   (``BASCULE_SERVER__PORT=8080``);
3. ``bascule.yaml`` (the path given to :func:`load_settings`, else ``$BASCULE_CONFIG``,
   else ``./bascule.yaml`` when it exists);
4. defaults.

Only composition roots (the CLI, server entry points, the SDK) call :func:`load_settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from bascule.core._section import Section
from bascule.core.errors import ConfigError
from bascule.core.monitoring_settings import MonitoringSettings
from bascule.core.project_settings import ProjectSettings
from bascule.core.serving_settings import (
    BatchingSettings,
    ModelServingSettings,
    PredictionLogSettings,
    ServingSettings,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "BatchingSettings",
    "FeatureSettings",
    "ModelServingSettings",
    "MonitoringSettings",
    "PipelineSettings",
    "PredictionLogSettings",
    "ProjectSettings",
    "S3Settings",
    "ServerSettings",
    "ServingSettings",
    "SettingSource",
    "Settings",
    "TrackingSettings",
    "explain_settings",
    "find_config_file",
    "load_settings",
]

ENV_PREFIX = "BASCULE_"
DEFAULT_CONFIG_FILE = "bascule.yaml"


class ServerSettings(Section):
    """Where the control-plane server listens."""

    host: str = "127.0.0.1"
    """Interface to bind; use 0.0.0.0 to accept connections from other machines."""
    port: int = Field(default=5000, ge=1, le=65535)
    """TCP port of the control plane (MLflow clients default to 5000 too)."""
    rollout_interval_s: float = Field(default=5.0, gt=0, le=3600)
    """How often the control plane moves active rollouts on (seconds): it measures both
    routes of each and promotes or rolls the challenger back."""


class TrackingSettings(Section):
    """How the SDK writes what runs log."""

    flush_interval_s: float = Field(default=2.0, gt=0, le=3600)
    """Buffered metrics are written at least this often (seconds)."""
    max_buffered_metrics: int = Field(default=5000, ge=1, le=1_000_000)
    """A buffer this full is written at once, whatever the interval."""
    uri: str | None = None
    """``http(s)://host:port`` of a bascule server to log to; unset logs straight to the metadata
    DB."""

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/") if value else value


class S3Settings(Section):
    """Connection to an S3-compatible artifact store (used when ``artifacts`` is ``s3://…``)."""

    endpoint_url: str | None = None
    """Endpoint of an S3-compatible server (MinIO, moto, R2); unset means AWS."""
    region: str | None = None
    """Region name passed to the S3 client."""
    access_key_id: SecretStr | None = None
    """Access key; unset lets boto3 find credentials the usual way."""
    secret_access_key: SecretStr | None = None
    """Secret key; unset lets boto3 find credentials the usual way."""


class PipelineSettings(Section):
    """How pipelines run: in this process, or as Ray tasks on a Ray cluster."""

    runner: Literal["local", "ray"] = "local"
    """``local`` runs steps in this process; ``ray`` runs them as Ray tasks (``bascule[ray]``)."""
    ray_address: str | None = None
    """Ray cluster address (``auto``, ``host:6379``, ``ray://host:10001``); setting it selects the
    Ray runner. Also read from ``BASCULE_RAY_ADDRESS``."""
    max_retries: int = Field(default=0, ge=0, le=100)
    """Retries of a failed step that does not set its own ``retries``."""
    backoff_s: float = Field(default=1.0, ge=0, le=3600)
    """Wait before a step's first retry (seconds); it doubles at each further retry."""

    @property
    def use_ray(self) -> bool:
        """Whether the Ray runner is selected (``runner: ray`` or a Ray address)."""
        return self.runner == "ray" or self.ray_address is not None


class FeatureSettings(Section):
    """The feature store: definitions (``bascule features apply``) and how its jobs run."""

    entities: list[dict[str, Any]] = []
    """Entities: ``{name, join_keys}``."""
    views: list[dict[str, Any]] = []
    """Feature views: ``{name, entities, source, timestamp_field, ttl, features}``."""
    on_demand_views: list[dict[str, Any]] = []
    """On-demand views: ``{name, function: module:function, sources, request, features}``."""
    services: dict[str, list[str]] = {}
    """Feature services: name → ``view:feature`` refs (or whole ``view`` names)."""
    materialize_batch_rows: int = Field(default=50_000, ge=1, le=10_000_000)
    """Rows per bulk write to the online store (and per resumable step of materialisation)."""
    offline_memory_limit: str | None = None
    """DuckDB memory limit for training sets and materialisation (``4GB``); past it DuckDB
    spills to ``home/features/spill``. Unset: DuckDB's default (80% of RAM)."""
    offline_threads: int | None = Field(default=None, ge=1, le=1024)
    """DuckDB threads for training sets and materialisation; unset: one per core."""
    registry_ttl_s: float = Field(default=10.0, ge=0, le=86_400)
    """How long a process trusts its cached definitions before checking the metadata DB again
    (seconds); an apply in the same process refreshes them at once."""


class _ShortEnvSource(PydanticBaseSettingsSource):
    """Short environment variables for nested settings (``BASCULE_RAY_ADDRESS``)."""

    ALIASES: dict[str, tuple[str, str]] = {
        f"{ENV_PREFIX}RAY_ADDRESS": ("pipelines", "ray_address"),
    }

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for env, (section, key) in self.ALIASES.items():
            value = os.environ.get(env)
            if value:
                found.setdefault(section, {})[key] = value
        return found


class Settings(BaseSettings):
    """Everything bascule can be configured with; see the module docstring for precedence."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    home: Path = Path(".bascule")
    """Folder for the embedded defaults: the SQLite database and local artifacts."""
    database_url: SecretStr | None = None
    """SQLAlchemy URL of the metadata DB (``sqlite:///…`` or ``postgresql://…``); default: SQLite
    in ``home``."""
    artifacts: str | None = None
    """Artifact root: a local folder, or ``s3://bucket/prefix``; default: ``home/artifacts``."""
    actor: str | None = None
    """Name recorded as the actor of registrations and alias moves; default: the OS user."""
    server: ServerSettings = ServerSettings()
    """Control-plane server."""
    tracking: TrackingSettings = TrackingSettings()
    """Experiment tracking client."""
    s3: S3Settings = S3Settings()
    """S3-compatible artifact storage."""
    serving: ServingSettings = ServingSettings()
    """Inference server (``bascule serve``)."""
    pipelines: PipelineSettings = PipelineSettings()
    """Pipeline runner (local or Ray), retries and backoff."""
    online_store: SecretStr | None = None
    """Online feature store: ``redis://[:password@]host:6379/0`` or ``sqlite:///path``; default:
    SQLite in ``home`` (``online.db``)."""
    features: FeatureSettings = FeatureSettings()
    """Feature store definitions and jobs."""
    monitoring: MonitoringSettings = MonitoringSettings()
    """Monitoring: schedule, windows, cost matrices, alert rules and notifiers."""
    project: ProjectSettings | None = None
    """The model project (``bascule init``): training entrypoint, data, retraining policy,
    promotion gate and rollout plan; unset: no retraining pipeline."""

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        scheme = raw.split(":", 1)[0].split("+", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"expected a sqlite:/// or postgresql:// URL, got scheme {scheme!r}")
        return value

    @field_validator("online_store")
    @classmethod
    def _check_online_store(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        scheme = value.get_secret_value().split(":", 1)[0]
        if scheme not in ("sqlite", "redis", "rediss"):
            raise ValueError(f"expected a redis:// or sqlite:/// URL, got scheme {scheme!r}")
        return value

    @field_validator("artifacts")
    @classmethod
    def _check_artifacts(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "://" in value and not value.startswith(("s3://", "file://")):
            raise ValueError(f"expected a folder path or s3://bucket/prefix, got {value!r}")
        if value.startswith("s3://") and not value[len("s3://") :].split("/", 1)[0]:
            raise ValueError(f"expected s3://bucket/prefix with a bucket name, got {value!r}")
        return value

    # -- derived values -------------------------------------------------------------------------

    @property
    def database_url_value(self) -> str:
        """The metadata DB URL in effect (the default SQLite file when unset)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.home / 'bascule.db').resolve()}"

    @property
    def online_store_value(self) -> str:
        """The online store URL in effect (SQLite ``home/online.db`` when unset)."""
        if self.online_store is not None:
            return self.online_store.get_secret_value()
        return f"sqlite:///{(self.home / 'online.db').resolve()}"

    @property
    def artifacts_value(self) -> str:
        """The artifact root in effect (``home/artifacts`` when unset)."""
        if self.artifacts is None:
            return str((self.home / "artifacts").resolve())
        if self.artifacts.startswith("file://"):
            return self.artifacts[len("file://") :]
        return self.artifacts

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_path = _YAML_PATH.get("path")
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _ShortEnvSource(settings_cls),
        ]
        if yaml_path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path))
        return tuple(sources)


# The YAML path is chosen by load_settings() just before it builds Settings; building
# Settings(...) directly (tests) reads no file.
_YAML_PATH: dict[str, Path | None] = {"path": None}


def _config_path(path: str | os.PathLike[str] | None) -> Path | None:
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} not found", path=str(p))
        return p
    env = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if env:
        p = Path(env)
        if not p.is_file():
            raise ConfigError(f"config file {env!r} (from {ENV_PREFIX}CONFIG) not found", path=env)
        return p
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def find_config_file(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The settings file in effect: ``path``, else ``$BASCULE_CONFIG``, else ``./bascule.yaml``
    when it exists (None when there is none). Relative project paths start from its folder.

    Raises:
        ConfigError: ``path`` or ``$BASCULE_CONFIG`` names a missing file.
    """
    return _config_path(path)


def _read_yaml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", path=str(path)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}",
            path=str(path),
        )
    return data


def _env_values() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k.startswith(ENV_PREFIX)
        and k != f"{ENV_PREFIX}CONFIG"
        and not k.startswith(f"{ENV_PREFIX}TEST_")
    }


@dataclass(frozen=True)
class SettingSource:
    """Where one setting's value came from, for ``bascule validate``."""

    field: str
    value: str
    source: str


def _source_of(
    loc: str, env: Mapping[str, str], yaml_data: Mapping[str, Any], path: Path | None
) -> str:
    env_key = ENV_PREFIX + loc.replace(".", "__").upper()
    if env_key in env:
        return f"environment variable {env_key}"
    node: Any = yaml_data
    for part in loc.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return "default"
    return f"{path} (key {loc})"


def _format_errors(
    exc: ValidationError, env: Mapping[str, str], yaml_data: Mapping[str, Any], path: Path | None
) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        source = _source_of(loc, env, yaml_data, path)
        if err["type"] == "extra_forbidden":
            known = ", ".join(sorted(Settings.model_fields))
            lines.append(f"{loc}: unknown setting (from {source}); known settings: {known}")
        else:
            value = err.get("input")
            lines.append(f"{loc}: {err['msg']} (got {value!r}, from {source})")
    return lines


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from overrides, ``BASCULE_*`` env vars, ``bascule.yaml`` and
    defaults.

    Raises:
        ConfigError: listing every mistake and the source that supplied it.
    """
    config_path = _config_path(path)
    yaml_data = _read_yaml(config_path)
    _YAML_PATH["path"] = config_path
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = _format_errors(exc, _env_values(), yaml_data, config_path)
        raise ConfigError(
            f"{len(lines)} problem(s) in the settings:\n  " + "\n  ".join(lines),
            problems=lines,
        ) from None
    finally:
        _YAML_PATH["path"] = None


def explain_settings(path: str | os.PathLike[str] | None = None) -> list[SettingSource]:
    """Load the settings and say where each value came from (``bascule validate``).

    Raises:
        ConfigError: as :func:`load_settings`.
    """
    settings = load_settings(path)
    config_path = _config_path(path)
    yaml_data = _read_yaml(config_path)
    env = _env_values()
    out: list[SettingSource] = []

    def walk(model: BaseModel, prefix: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            loc = f"{prefix}{name}"
            if isinstance(value, BaseModel):
                walk(value, loc + ".")
            else:
                shown = "**********" if isinstance(value, SecretStr) else str(value)
                out.append(SettingSource(loc, shown, _source_of(loc, env, yaml_data, config_path)))

    walk(settings, "")
    return out
