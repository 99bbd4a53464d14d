"""The serving section of the settings: defaults, policies, mistakes reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from bascule.core.errors import ConfigError
from bascule.core.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BASCULE_CONFIG", raising=False)
    monkeypatch.delenv("BASCULE_SERVING", raising=False)


def test_serving_defaults() -> None:
    s = Settings().serving

    assert (8080, 1, 1.0) == (s.port, s.workers, s.poll_interval_s)
    assert (256, 2.0, 1024) == (
        s.batching.max_batch_size,
        s.batching.max_wait_ms,
        s.batching.max_queue,
    )
    assert s.prediction_log.enabled
    assert s.intra_op_threads is None
    assert {} == s.models


def test_policies_come_from_yaml(tmp_path: Path) -> None:
    (tmp_path / "bascule.yaml").write_text(
        "serving:\n"
        "  refs: [fraud@champion]\n"
        "  models:\n"
        "    fraud: {challenger: fraud@challenger, mode: canary, canary_percent: 5}\n"
    )

    s = load_settings().serving

    assert ["fraud@champion"] == s.refs
    assert ("fraud@challenger", "canary", 5.0) == (
        s.models["fraud"].challenger,
        s.models["fraud"].mode,
        s.models["fraud"].canary_percent,
    )


def test_the_whole_section_can_come_as_json_in_one_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """How ``bascule serve --workers N`` hands its settings to worker processes."""
    monkeypatch.setenv("BASCULE_SERVING", '{"refs": ["fraud:3"], "port": 9000, "workers": 2}')

    s = load_settings().serving

    assert (["fraud:3"], 9000, 2) == (s.refs, s.port, s.workers)


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ("{challenger: fraud@challenger}", ["needs a mode"]),
        ("{mode: shadow}", ["needs a challenger"]),
        ("{challenger: x, mode: canary, canary_percent: 150}", ["canary_percent"]),
        ("{challenger: x, mode: sideways}", ["mode"]),
    ],
)
def test_policy_mistakes_are_reported(tmp_path: Path, policy: str, words: list[str]) -> None:
    (tmp_path / "bascule.yaml").write_text(f"serving:\n  models:\n    fraud: {policy}\n")

    with pytest.raises(ConfigError) as e:
        load_settings()

    assert "config_error" == e.value.code
    for word in words:
        assert word in e.value.message
