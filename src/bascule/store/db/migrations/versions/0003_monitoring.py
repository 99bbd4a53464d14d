"""monitoring: feedback, runs, results, alerts and alert rule states

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 08:08:06.592039
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_rule_states",
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("consecutive", sa.Integer(), nullable=False),
        sa.Column("last_window_end", sa.BigInteger(), nullable=True),
        sa.Column("firing_alert_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model", "rule"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("metric", sa.String(length=128), nullable=False),
        sa.Column("feature", sa.String(length=250), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("comparison", sa.String(length=2), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("fired_at", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.Column("resolved_value", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("resolve_notified", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_model_state", ["model", "state"], unique=False)

    op.create_table(
        "feedback",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=250), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("label_kind", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.Float(), nullable=True),
        sa.Column("timestamp", sa.BigInteger(), nullable=True),
        sa.Column("predicted_at", sa.BigInteger(), nullable=True),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "row"),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_model_name"), ["model_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_received_at"), ["received_at"], unique=False)

    op.create_table(
        "monitoring_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("windows", sa.Integer(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("labelled_rows", sa.BigInteger(), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitoring_runs", schema=None) as batch_op:
        batch_op.create_index("ix_monitoring_runs_model_end", ["model", "window_end"], unique=False)

    op.create_table(
        "monitoring_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=250), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("metric", sa.String(length=128), nullable=False),
        sa.Column("feature", sa.String(length=250), nullable=True),
        sa.Column("segment", sa.String(length=250), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["monitoring_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitoring_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_monitoring_results_model_metric", ["model", "metric", "window_end"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_monitoring_results_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("monitoring_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitoring_results_run_id"))
        batch_op.drop_index("ix_monitoring_results_model_metric")

    op.drop_table("monitoring_results")
    with op.batch_alter_table("monitoring_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_monitoring_runs_model_end")

    op.drop_table("monitoring_runs")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_received_at"))
        batch_op.drop_index(batch_op.f("ix_feedback_model_name"))

    op.drop_table("feedback")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_model_state")

    op.drop_table("alerts")
    op.drop_table("alert_rule_states")
