"""Every model adapter, built from the settings."""

from __future__ import annotations

from pathlib import Path

from cosmos_workflow.config.settings import Settings
from cosmos_workflow.execution.adapters.base import ModelAdapter
from cosmos_workflow.execution.adapters.simulated import SimulatedAdapter
from cosmos_workflow.execution.adapters.transfer1 import Transfer1Adapter
from cosmos_workflow.execution.adapters.transfer2_5 import Transfer25Adapter
from cosmos_workflow.execution.adapters.upsampler import (
    SimulatedUpsamplerAdapter,
    Transfer1UpsamplerAdapter,
)
from cosmos_workflow.execution.adapters.upscale import (
    SimulatedUpscalerAdapter,
    Transfer1UpscalerAdapter,
)


def build_adapters(settings: Settings) -> dict[str, ModelAdapter]:
    """Build every adapter.

    Args:
        settings: The merged settings (simulator, adapter set-up, project folder).

    Returns:
        The adapters by the name a manifest's ``model.adapter`` uses.
    """
    simulator = settings.simulator
    if simulator.ledger:
        ledger = Path(simulator.ledger).expanduser()
        if not ledger.is_absolute():
            ledger = settings.project_dir / ledger
        simulator = simulator.model_copy(update={"ledger": str(ledger)})
    adapters: list[ModelAdapter] = [
        # The simulated model stands in for Transfer1: it batches as Transfer1 does.
        SimulatedAdapter(simulator, settings.adapters.transfer1.max_batch_size),
        Transfer1Adapter(settings.adapters.transfer1),
        Transfer25Adapter(settings.adapters.transfer2_5),
        SimulatedUpscalerAdapter(simulator),
        Transfer1UpscalerAdapter(settings.adapters.transfer1),
        SimulatedUpsamplerAdapter(simulator),
        Transfer1UpsamplerAdapter(settings.adapters.transfer1),
    ]
    return {adapter.name: adapter for adapter in adapters}
