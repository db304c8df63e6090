"""The public API of cosmos-workflow: :class:`CosmosAPI` and what its methods take and give.

    from cosmos_workflow.api import CosmosAPI

    with CosmosAPI.from_project() as api:
        print(api.status())

Names are imported on first use (PEP 562), so ``import cosmos_workflow.api``
stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cosmos_workflow.api.cosmos_api import CosmosAPI
    from cosmos_workflow.database.states import RUN_STATUSES
    from cosmos_workflow.engine.control import KillReport, LogResult
    from cosmos_workflow.local_ai.prepare import PrepareResult
    from cosmos_workflow.outputs.report import ReportResult
    from cosmos_workflow.outputs.verify import VerifyReport
    from cosmos_workflow.sweeps.derive import DEFAULT_UPSCALE_WEIGHT
    from cosmos_workflow.sweeps.inference import (
        InferencePlan,
        PromptRef,
        active_weights,
        weights_text,
    )
    from cosmos_workflow.sweeps.multirun import (
        MULTIRUN_RECORD,
        OVERRIDES_PARAM,
        JobFailure,
        JobPlan,
        Multirun,
        MultirunSweep,
    )
    from cosmos_workflow.sweeps.plan import DerivedPrompt, SweepPlan
    from cosmos_workflow.sweeps.session import SweepSummary
    from cosmos_workflow.sweeps.single import CreatedPrompt, EnhanceResult, InferenceResult

# Each public name and the module that defines it.
_EXPORTS = {
    "CosmosAPI": "cosmos_workflow.api.cosmos_api",
    "RUN_STATUSES": "cosmos_workflow.database.states",
    "DEFAULT_UPSCALE_WEIGHT": "cosmos_workflow.sweeps.derive",
    "SweepPlan": "cosmos_workflow.sweeps.plan",
    "DerivedPrompt": "cosmos_workflow.sweeps.plan",
    "SweepSummary": "cosmos_workflow.sweeps.session",
    "InferenceResult": "cosmos_workflow.sweeps.single",
    "EnhanceResult": "cosmos_workflow.sweeps.single",
    "CreatedPrompt": "cosmos_workflow.sweeps.single",
    "InferencePlan": "cosmos_workflow.sweeps.inference",
    "PromptRef": "cosmos_workflow.sweeps.inference",
    "active_weights": "cosmos_workflow.sweeps.inference",
    "weights_text": "cosmos_workflow.sweeps.inference",
    "JobPlan": "cosmos_workflow.sweeps.multirun",
    "JobFailure": "cosmos_workflow.sweeps.multirun",
    "Multirun": "cosmos_workflow.sweeps.multirun",
    "MultirunSweep": "cosmos_workflow.sweeps.multirun",
    "MULTIRUN_RECORD": "cosmos_workflow.sweeps.multirun",
    "OVERRIDES_PARAM": "cosmos_workflow.sweeps.multirun",
    "ReportResult": "cosmos_workflow.outputs.report",
    "KillReport": "cosmos_workflow.engine.control",
    "LogResult": "cosmos_workflow.engine.control",
    "PrepareResult": "cosmos_workflow.local_ai.prepare",
    "VerifyReport": "cosmos_workflow.outputs.verify",
}

__all__ = [
    "DEFAULT_UPSCALE_WEIGHT",
    "MULTIRUN_RECORD",
    "OVERRIDES_PARAM",
    "RUN_STATUSES",
    "CosmosAPI",
    "CreatedPrompt",
    "DerivedPrompt",
    "EnhanceResult",
    "InferencePlan",
    "InferenceResult",
    "JobFailure",
    "JobPlan",
    "KillReport",
    "LogResult",
    "Multirun",
    "MultirunSweep",
    "PrepareResult",
    "PromptRef",
    "ReportResult",
    "SweepPlan",
    "SweepSummary",
    "VerifyReport",
    "active_weights",
    "weights_text",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
