"""The inference form that the prompts page and a run's "run again" share.

Its fields are `cosmos inference`'s choices (cli/run.py): seed, steps,
guidance, sigma max, fps, GPUs, and a weight slider per control modality
(``use.KEY`` ticks it, ``weight.KEY`` is its value; an unticked one gets the
prompt's default, as on the command line).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cosmos_workflow.api.launch import INFERENCE_OPTIONS
from cosmos_workflow.manifest.specs import CONTROL_KEYS
from cosmos_workflow.ui.actions import Form

if TYPE_CHECKING:
    from cosmos_workflow.api import CosmosAPI

# The weight sliders' range and step.
WEIGHT_MAX = 1.0
WEIGHT_STEP = 0.05


def form_defaults(api: CosmosAPI, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The form's values: a run's parameters (``model.KEY`` as in its spec), else the model's.

    Returns:
        ``{options: [{key, value}], weights: [{key, value, on}], max, step}``.
    """
    model = api.composed.get("model") or {}
    params = params or {}
    options = []
    for key in INFERENCE_OPTIONS:
        value = params.get(f"model.{key}", model.get(key))
        options.append({"key": key, "value": "" if value is None else value})
    weights = []
    defaults = model.get("weights") or {}
    for key in CONTROL_KEYS:
        given = params.get(f"model.weights.{key}") if params else defaults.get(key)
        weights.append(
            {"key": key, "value": 0.5 if given is None else given, "on": given is not None}
        )
    return {"options": options, "weights": weights, "max": WEIGHT_MAX, "step": WEIGHT_STEP}


def launch_options(form: Form) -> dict[str, Any]:
    """The options of api.web.launch.inference that a submitted form gives."""
    options: dict[str, Any] = {key: form.one(key) for key in INFERENCE_OPTIONS if form.one(key)}
    weights = {key: form.one(f"weight.{key}") for key in CONTROL_KEYS if form.flag(f"use.{key}")}
    if weights:
        options["weights"] = weights
    return options
