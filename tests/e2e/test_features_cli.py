"""``bascule features`` in a subprocess, with definitions in a bascule.yaml."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from tests.e2e.conftest import as_json

Cli = Callable[..., subprocess.CompletedProcess[str]]
T0 = datetime(2026, 1, 1, tzinfo=UTC)

YAML = """
features:
  entities:
    - name: customer
      join_keys: [customer_id]
  views:
    - name: customer_stats
      entities: [customer]
      source: data/stats.parquet
      features: {{spend: {spend_type}, n_txn: int64}}
    - name: recent
      entities: [customer]
      source: {{query: "SELECT * FROM read_parquet('data/stats.parquet')"}}
      ttl: 3d
      features: {{spend: float64}}
  on_demand_views:
    - name: ratio
      function: my_features:ratio
      sources: [customer_stats]
      request: {{amount: float64}}
      features: {{amount_over_spend: float64}}
  services:
    fraud: [customer_stats:spend, ratio:amount_over_spend]
"""

UDF = """
import pandas as pd


def ratio(inputs: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"amount_over_spend": inputs["amount"] / inputs["spend"]})
"""


def _project(root: Path, spend_type: str = "float64") -> None:
    (root / "data").mkdir(exist_ok=True)
    pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 3],
            "event_timestamp": [T0, T0 + timedelta(days=2), T0 + timedelta(days=1), T0],
            "spend": [10.0, 20.0, 5.0, 1.0],
            "n_txn": [1, 2, 3, 4],
        }
    ).to_parquet(root / "data" / "stats.parquet")
    (root / "bascule.yaml").write_text(YAML.format(spend_type=spend_type))
    (root / "my_features.py").write_text(UDF)


def test_apply_list_show_materialize_get(cli: Cli, tmp_path: Path) -> None:
    _project(tmp_path)

    first = as_json(cli("features", "apply", "--json"))
    again = as_json(cli("features", "apply", "--json"))
    listed = as_json(cli("features", "list", "--json"))
    shown = as_json(cli("features", "show", "customer_stats", "--json"))
    done = as_json(
        cli("features", "materialize", "--start", "2025-12-01", "--end", "2026-02-01", "--json")
    )
    incremental = as_json(cli("features", "materialize", "--json"))
    got = as_json(cli("features", "get", "customer_stats:spend", "-e", "customer_id=1", "--json"))
    svc = as_json(
        cli("features", "get", "fraud", "-e", "customer_id=2", "-e", "amount=10", "--json")
    )
    human = cli("features", "show", "customer_stats")

    assert {"created"} == {c["status"] for c in first}
    assert {"unchanged"} == {c["status"] for c in again}
    assert ["customer", "customer_stats", "fraud", "ratio", "recent"] == sorted(
        d["name"] for d in listed
    )
    assert "view" == shown["kind"]
    assert [1] == [v["version"] for v in shown["versions"]]
    assert shown["watermark"] is None
    assert {"customer_stats": 3, "recent": 3} == {r["view"]: r["rows"] for r in done}
    assert ["customer_stats", "recent"] == sorted(r["view"] for r in incremental)
    assert [{"feature": "spend", "value": 20.0, "status": "PRESENT"}] == [
        {k: v for k, v in g.items() if k != "event_timestamp"} for g in got
    ]
    assert "2026-01-03" in got[0]["event_timestamp"]
    assert {"spend": 5.0, "amount_over_spend": 2.0} == {g["feature"]: g["value"] for g in svc}
    assert 0 == human.returncode
    assert "materialised until" in human.stdout


def test_on_demand_features_need_their_request_fields(cli: Cli, tmp_path: Path) -> None:
    _project(tmp_path)
    as_json(cli("features", "apply", "--json"))

    proc = cli("features", "get", "fraud", "-e", "customer_id=2")

    assert 2 == proc.returncode
    assert "request field(s) 'amount'" in proc.stderr


def test_a_type_that_differs_from_the_source_stops_apply(cli: Cli, tmp_path: Path) -> None:
    _project(tmp_path, spend_type="int64")

    proc = cli("features", "apply")
    listed = as_json(cli("features", "list", "--json"))

    assert 2 == proc.returncode
    assert "'spend' is declared int64 but the source column is DOUBLE" in proc.stderr
    assert [] == listed


def test_unknown_names_exit_4_and_list_what_exists(cli: Cli, tmp_path: Path) -> None:
    _project(tmp_path)
    as_json(cli("features", "apply", "--json"))

    proc = cli("features", "show", "nope")
    mat = cli("features", "materialize", "--view", "nope")

    assert 4 == proc.returncode
    assert "'customer_stats'" in proc.stderr
    assert 4 == mat.returncode
    assert "feature view 'nope' not found" in mat.stderr


def _drop_recent(root: Path) -> None:
    text = (root / "bascule.yaml").read_text()
    start = text.index("    - name: recent")
    end = text.index("  on_demand_views:")
    (root / "bascule.yaml").write_text(text[:start] + text[end:])


def test_apply_removes_what_the_file_no_longer_declares(cli: Cli, tmp_path: Path) -> None:
    _project(tmp_path)
    as_json(cli("features", "apply", "--json"))
    as_json(
        cli("features", "materialize", "--start", "2025-12-01", "--end", "2026-02-01", "--json")
    )
    _drop_recent(tmp_path)

    kept = as_json(cli("features", "apply", "--no-prune", "--json"))
    kept_list = as_json(cli("features", "list", "--json"))
    pruned = cli("features", "apply")
    listed = as_json(cli("features", "list", "--json"))
    lookup = cli("features", "get", "recent:spend", "-e", "customer_id=1")
    shown = cli("features", "show", "recent")
    still = as_json(cli("features", "get", "customer_stats:spend", "-e", "customer_id=1", "--json"))
    again = as_json(cli("features", "apply", "--json"))

    assert {"unchanged"} == {c["status"] for c in kept}
    assert "recent" in {d["name"] for d in kept_list}
    assert 0 == pruned.returncode, pruned.stderr
    assert "removed 1 definition(s) no longer in bascule.yaml: feature view 'recent'" in (
        pruned.stdout
    )
    assert ["customer", "customer_stats", "fraud", "ratio"] == sorted(d["name"] for d in listed)
    assert 4 == lookup.returncode
    assert "feature view 'recent' was removed from the feature definitions" in lookup.stderr
    assert 0 == shown.returncode
    assert "was removed on" in shown.stdout
    assert [20.0] == [g["value"] for g in still]
    assert {"unchanged"} == {c["status"] for c in again}


def test_apply_refuses_to_remove_a_view_a_service_still_uses(cli: Cli, tmp_path: Path) -> None:
    _project(tmp_path)
    as_json(cli("features", "apply", "--json"))
    text = (tmp_path / "bascule.yaml").read_text()
    start = text.index("    - name: customer_stats")
    end = text.index("    - name: recent")
    (tmp_path / "bascule.yaml").write_text(text[:start] + text[end:])

    proc = cli("features", "apply")
    listed = as_json(cli("features", "list", "--json"))

    assert 2 == proc.returncode
    assert "feature view 'customer_stats'" in proc.stderr
    assert "still uses it" in proc.stderr
    assert "customer_stats" in {d["name"] for d in listed}
