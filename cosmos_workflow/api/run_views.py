"""Read models of the web app's run and queue pages: plain, JSON-ready data.

A run's page (:meth:`RunViews.run`): its output, inputs, the controls given
and those the model computed, prompts (original and enhanced), parameters
with what differs from its sweep siblings, spec, command, log, parent and
children. The queue (:meth:`RunViews.queue`): each target and GPU with the
jobs that run there, and the queued runs in order. A constant number of
queries per page, never one per row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cosmos_workflow.api.catalogue import Catalogue, prompt_dict, run_dict
from cosmos_workflow.database.models import Prompt, Run, RunStatus
from cosmos_workflow.engine.eta import format_duration
from cosmos_workflow.outputs.store import OUTPUT_PROMPT
from cosmos_workflow.sweeps.workspace import Workspace

# The largest part of a text file of a run folder shown on its page.
TEXT_MAX_CHARS = 20_000
# The run folder's files shown as text on a run's page (label -> file name).
RUN_TEXT_FILES = {"spec": "spec.json", "command": "command.txt", "run": "run.yaml"}


class RunViews:
    """What the run and queue pages show.

    Args:
        ws: The workspace of the API.
        catalogue: The API's catalogue (ids, status).
    """

    def __init__(self, ws: Workspace, catalogue: Catalogue) -> None:
        self._ws = ws
        self._catalogue = catalogue

    # -- a run ------------------------------------------------------------------------
    def run(self, given: str) -> dict[str, Any]:
        """Everything a run's page shows (see the module's docstring).

        Raises:
            NotFoundFailure: no such run. ValidationFailure: not a run id.
        """
        run_id = self._catalogue.resolve_id(given, "rs")
        repo, store = self._ws.repository, self._ws.store
        run = repo.get_run(run_id)
        prompt = repo.get_prompt(run.prompt_id)
        spec = run.spec or {}
        inputs = (spec.get("prompt") or {}).get("inputs") or {}
        folder = store.run_dir(run_id)
        data = run_dict(run, store)
        data.update(
            {
                "prompt": prompt_dict(prompt),
                "original_prompt": self._original(prompt),
                "enhanced_prompts": [
                    prompt_dict(p)
                    for p in repo.child_prompts([prompt.id])
                    if (p.origin or {}).get("kind") == "enhanced"
                ],
                "input_video": (inputs.get("video") or {}).get("path"),
                "controls_given": {
                    key: entry.get("path")
                    for key, entry in (inputs.get("controls") or {}).items()
                    if isinstance(entry, dict)
                },
                "controls_computed": {
                    key: str(path) for key, path in store.control_videos(run_id).items()
                },
                "output_text": _read_text(folder / OUTPUT_PROMPT),
                "texts": {
                    label: _read_text(folder / name) for label, name in RUN_TEXT_FILES.items()
                },
                "log_path": str(store.run_log(run_id)),
                "parent": _brief(repo.get_run(run.parent_run_id)) if run.parent_run_id else None,
                "children": [_brief(child) for child in repo.child_runs([run_id])],
                "duration": _duration(run),
            }
        )
        data["sweeps"], data["params"] = self._params(run)
        return data

    def _original(self, prompt: Prompt) -> dict[str, Any] | None:
        """The prompt an enhanced prompt was made from (None: not enhanced, or gone)."""
        if prompt.parent_id is None or (prompt.origin or {}).get("kind") != "enhanced":
            return None
        from cosmos_workflow.errors import NotFoundFailure

        try:
            return prompt_dict(self._ws.repository.get_prompt(prompt.parent_id))
        except NotFoundFailure:
            return None

    def _params(self, run: Run) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The run's sweeps, and its parameters with those differing from its siblings marked.

        Siblings: the runs of the same stage of any sweep the run is part of.
        """
        repo = self._ws.repository
        own = flat_params(run.spec or {})
        differs: set[str] = set()
        sweeps = []
        for sweep_id in repo.sweeps_of_run(run.id):
            links = repo.sweep_runs(sweep_id)
            stage = next((link.stage for link, other in links if other.id == run.id), None)
            siblings = [other for link, other in links if link.stage == stage]
            for other in siblings:
                theirs = flat_params(other.spec or {})
                differs.update(k for k in own.keys() | theirs.keys() if own.get(k) != theirs.get(k))
            name = repo.get_sweep(sweep_id).name
            sweeps.append({"id": sweep_id, "name": name, "siblings": len(siblings)})
        params = [
            {"key": key, "value": value, "differs": key in differs}
            for key, value in own.items()
            if value is not None
        ]
        return sweeps, params

    # -- prompts ------------------------------------------------------------------------
    def prompts(
        self, text: str | None = None, enhanced: bool | None = None, with_runs: bool | None = None
    ) -> list[dict[str, Any]]:
        """Prompts, newest first, with their runs counted by status; filtered.

        Args:
            text: Only those whose id, name, text or negative prompt holds it (any case).
            enhanced: Only enhanced prompts (True) or only the others (False).
            with_runs: Only prompts with runs (True) or without (False).
        """
        if not self._ws.database_exists():
            return []
        repo = self._ws.repository
        counts: dict[str, dict[str, int]] = {}
        for run in repo.list_runs():
            mine = counts.setdefault(run.prompt_id, {})
            mine[run.status.value] = mine.get(run.status.value, 0) + 1
        needle = (text or "").lower()
        found = []
        for prompt in repo.list_prompts():
            kind = (prompt.origin or {}).get("kind")
            fields = (prompt.id, prompt.name, prompt.text, prompt.negative_prompt or "")
            runs = counts.get(prompt.id, {})
            if needle and not any(needle in field.lower() for field in fields):
                continue
            if enhanced is not None and (kind == "enhanced") != enhanced:
                continue
            if with_runs is not None and bool(runs) != with_runs:
                continue
            found.append({**prompt_dict(prompt), "runs": runs, "runs_total": sum(runs.values())})
        return found

    # -- the queue -----------------------------------------------------------------------
    def queue(self) -> dict[str, Any]:
        """Each target and GPU with what runs there, the queued runs in order, active sweeps.

        Returns:
            ``{targets: [{name, reachable, error, gpus: [{index, jobs}], jobs}],
            queued: [run], sweeps: [sweep status], counts}``; each job has
            ``job_id, target, gpus, run_ids, elapsed, sweep``.
        """
        status = self._catalogue.status()
        jobs = _jobs(status, self._ws.clock.now())
        targets = []
        for target in status["targets"]:
            mine = [job for job in jobs if job["target"] == target["name"]]
            described = {
                entry.get("index"): entry
                for entry in target.get("gpus") or []
                if isinstance(entry, dict)
            }
            indices = sorted({*described, *(g for job in mine for g in job["gpus"])} - {None})
            gpus = [
                {
                    "index": index,
                    "info": described.get(index),
                    "jobs": [job for job in mine if index in job["gpus"]],
                }
                for index in indices
            ]
            targets.append({**target, "gpu_list": gpus, "jobs": mine})
        known = {target["name"] for target in status["targets"]}
        elsewhere = [job for job in jobs if job["target"] not in known]
        if elsewhere:
            targets.append({"name": "other", "reachable": None, "gpu_list": [], "jobs": elsewhere})
        queued = []
        if self._ws.database_exists():
            waiting = self._ws.repository.list_runs(RunStatus.QUEUED)
            queued = [_brief(run) for run in sorted(waiting, key=lambda r: (r.created_at, r.id))]
        return {
            "targets": targets,
            "queued": queued,
            "sweeps": [
                {**sweep, "eta": format_duration(sweep["eta_s"])}
                for sweep in status["active_sweeps"]
            ],
            "counts": status["counts"],
        }


def flat_params(spec: dict[str, Any]) -> dict[str, Any]:
    """A run spec's model parameters as dotted keys (``model.seed``, ``model.weights.depth``).

    The prompt is ``prompt`` (its name); the adapter ``model.adapter``.
    """
    flat: dict[str, Any] = {"prompt": (spec.get("prompt") or {}).get("name")}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        elif not isinstance(value, dict):
            flat[prefix] = value

    walk("model", spec.get("model") or {})
    return flat


def _jobs(status: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The running jobs of every active sweep, and of runs outside a sweep, by job id.

    Each has its sweeps' ETA (``eta``: the first sweep's; "unknown" outside a sweep).
    """
    jobs: dict[str, dict[str, Any]] = {}
    for sweep in status["active_sweeps"]:
        for job in sweep["jobs"]:
            key = job["job_id"] or f"run:{job['run_ids'][0]}"
            entry = jobs.setdefault(key, {**job, "sweeps": [], "eta_s": sweep["eta_s"]})
            entry["sweeps"].append({"id": sweep["id"], "name": sweep["name"]})
    for run in status["running"]:
        key = run["job_id"] or f"run:{run['id']}"
        if key not in jobs:
            started = run["started_at"]
            elapsed = (now - datetime.fromisoformat(started)).total_seconds() if started else None
            jobs[key] = {
                "job_id": run["job_id"],
                "target": run["target"],
                "gpus": [int(g) for g in (run["gpus"] or "").split(",") if g.strip().isdigit()],
                "runs": 1,
                "run_ids": [run["id"]],
                "started_at": started,
                "elapsed_s": elapsed,
                "eta_s": None,
                "sweeps": [],
            }
        elif run["id"] not in jobs[key]["run_ids"]:
            jobs[key]["run_ids"].append(run["id"])
    for job in jobs.values():
        job["elapsed"] = format_duration(job.get("elapsed_s"))
        job["eta"] = format_duration(job["eta_s"])
    return list(jobs.values())


def _brief(run: Run) -> dict[str, Any]:
    """A run as a line of a list: id, adapter, status, rating, prompt, times."""
    return {
        "id": run.id,
        "adapter": run.adapter,
        "status": run.status.value,
        "rating": run.rating,
        "prompt_id": run.prompt_id,
        "prompt_name": ((run.spec or {}).get("prompt") or {}).get("name"),
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "target": run.target,
        "gpus": run.gpus,
    }


def _duration(run: Run) -> str | None:
    """How long the run's execution took (None: not finished)."""
    if run.started_at is None or run.finished_at is None:
        return None
    return format_duration((run.finished_at - run.started_at).total_seconds())


def _read_text(path: Any) -> str | None:
    """The start of a text file of the run folder (None: not there)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.read(TEXT_MAX_CHARS)
    except OSError:
        return None
