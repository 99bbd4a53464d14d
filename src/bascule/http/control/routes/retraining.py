"""Automatic retraining on the control plane, read-only.

* ``GET /api/v1/models/{name}/retraining`` — what the server's retraining automation is
  doing for the project's model: its policy (``on_alerts``, ``schedule``,
  ``min_new_labels``), the next scheduled time, the labelled rows counted since the last
  retraining, whether one runs now and the triggers waiting for the follow-up run, and the
  recent retrainings with their triggers and outcomes (newest first). For another model, or
  when the server runs no automation (no project configured), ``automated`` is false and
  ``reason`` says why. A model that is neither registered nor the project's is a 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Request, Response

from bascule.http.control.deps import get_services, render
from bascule.wiring import Services

if TYPE_CHECKING:
    from bascule.pipelines.automation import RetrainAutomation

router = APIRouter(prefix="/api/v1", tags=["retraining"])
Svc = Annotated[Services, Depends(get_services)]


@router.get("/models/{name}/retraining")
def retraining_state(name: str, request: Request, services: Svc) -> Response:
    """The retraining automation of a model: policy, running, pending triggers, outcomes."""
    automation: RetrainAutomation | None = request.app.state.retraining
    project = services.settings.project
    if project is None or project.model != name:
        services.registry.get_model(name)  # 404 for an unknown model
        why = (
            "no project is configured (run 'bascule init')"
            if project is None
            else f"the project's model is {project.model!r}"
        )
        return render({"model": name, "automated": False, "reason": f"not automated: {why}"})
    if automation is None:
        return render(
            {
                "model": name,
                "automated": False,
                "reason": "the retraining automation runs in 'bascule server' (it is not "
                "running in this process)",
            }
        )
    return render(automation.state())
