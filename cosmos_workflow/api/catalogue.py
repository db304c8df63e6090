"""The catalogue: what is stored, looked up and changed by id.

`cosmos list`, `show`, `search`, `rate`, `status`, `delete` and `verify`, shell
completion of ids and the expansion of id prefixes. Every answer is plain
JSON-ready data (:func:`prompt_dict`, :func:`run_dict`, :func:`sweep_dict`).
Without a database nothing is created: lists are empty, ids are not found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cosmos_workflow.database.models import Prompt, Run, RunStatus, Sweep
from cosmos_workflow.database.ratings import check_rating
from cosmos_workflow.database.search import MAX_SEARCH_CHARS, matched_fields
from cosmos_workflow.errors import CosmosError, NotFoundFailure, ValidationFailure
from cosmos_workflow.outputs.store import OUTPUT_PROMPT, OUTPUT_VIDEO, OutputStore
from cosmos_workflow.outputs.verify import succeeded_run_problems
from cosmos_workflow.sweeps.derive import UPSAMPLER_ADAPTERS
from cosmos_workflow.sweeps.status import sweep_status
from cosmos_workflow.sweeps.workspace import Workspace

if TYPE_CHECKING:
    from cosmos_workflow.config.targets import ConfiguredTarget
    from cosmos_workflow.database.repository import DataRepository
    from cosmos_workflow.outputs.verify import VerifyReport
    from cosmos_workflow.utils.step_progress import StepProgress

# The id prefix of each kind that `cosmos delete` takes.
_PREFIXES = {"prompt": "ps", "run": "rs"}
# Ids per look-up of a whole selection (far below every backend's bound-parameter limit).
_ID_CHUNK = 500


class Catalogue:
    """Lists, details, search, ratings, status and deletion of prompts, runs and sweeps.

    Args:
        ws: The workspace of the API.
    """

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    # -- ids -----------------------------------------------------------------------
    def resolve_id(self, given: str, prefix: str | None = None) -> str:
        """Expand a unique id prefix to the full id.

        Raises:
            NotFoundFailure: nothing matches. ValidationFailure: ambiguous.
        """
        if prefix and not given.startswith(f"{prefix}_"):
            raise ValidationFailure(f"expected a {prefix}_ id, got {given!r}")
        if not self._ws.database_exists():
            raise NotFoundFailure(f"no object with id {given} (the database is empty)")
        matches = self._ws.repository.find_ids(given)
        if given in matches:
            return given
        if not matches:
            raise NotFoundFailure(f"no prompt, run or sweep with id {given}")
        if len(matches) > 1:
            raise ValidationFailure(f"id {given} is ambiguous: {', '.join(sorted(matches))}")
        return matches[0]

    def ids_with_prefix(
        self, prefix: str, kinds: tuple[str, ...], limit: int
    ) -> list[tuple[str, str]]:
        """(id, label) of objects whose id starts with ``prefix`` (shell completion).

        Without a database, or with one whose schema is not this version's,
        none (and nothing is created or migrated).
        """
        if not self._ws.database_exists():
            return []
        from cosmos_workflow.database.engine import (
            create_db_engine,
            current_revision,
            head_revision,
            session_factory,
        )
        from cosmos_workflow.database.repository import DataRepository

        # Completion reads only: it never creates or migrates a (shared) schema.
        engine = create_db_engine(self._ws.settings.database_url)
        try:
            if current_revision(engine) != head_revision(engine):
                return []
            repository = DataRepository(session_factory(engine), self._ws.clock)
            return repository.ids_with_prefix(prefix, kinds, limit)
        finally:
            engine.dispose()

    # -- lists and search -----------------------------------------------------------
    def list_prompts(self, limit: int | None) -> list[dict[str, Any]]:
        """Prompts as dicts, newest first."""
        if not self._ws.database_exists():
            return []
        return [prompt_dict(p) for p in self._ws.repository.list_prompts(limit)]

    def list_runs(
        self,
        status: str | None,
        limit: int | None,
        rating: int | None,
        min_rating: int | None,
        prompt: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs as dicts, newest first; see CosmosAPI.list_runs.

        Raises:
            ValidationFailure: an unknown status, a rating outside 1-5, or both
                rating filters (one of them would be ignored). NotFoundFailure:
                no prompt has that id or name.
        """
        wanted = _parse_status(status)
        if rating is not None and min_rating is not None:
            raise ValidationFailure("give --rating or --min-rating, not both")
        if rating is not None:
            check_rating(rating, "--rating")
        if min_rating is not None:
            check_rating(min_rating, "--min-rating")
        _check_prompt_given(prompt)
        if not self._ws.database_exists():
            return []
        prompt_ids = self.prompt_ids(prompt) if prompt is not None else None
        runs = self._ws.repository.list_runs(
            wanted, limit, rating=rating, min_rating=min_rating, prompt_ids=prompt_ids
        )
        # A cheap check of each succeeded run's folder (sizes), unless cache.verify hashes.
        check = self._ws.settings.cache.verify
        return [run_dict(r, self._ws.store, check) for r in runs]

    def prompt_ids(self, given: str) -> list[str]:
        """Prompts by id (or unique prefix), else by name: every prompt of that name.

        Raises:
            NotFoundFailure: no prompt has that id or name. ValidationFailure:
                an ambiguous prefix, or nothing given.
        """
        _check_prompt_given(given)
        if given.startswith("ps_"):
            try:
                return [self.resolve_id(given, "ps")]
            except NotFoundFailure:
                pass  # perhaps a name that looks like an id
        named = self._ws.repository.prompts_named(given) if self._ws.database_exists() else []
        if not named:
            raise NotFoundFailure(f"no prompt with id or name {given!r}")
        return named

    def list_sweeps(self, limit: int | None) -> list[dict[str, Any]]:
        """Sweeps as dicts with run counts, newest first."""
        if not self._ws.database_exists():
            return []
        repo = self._ws.repository
        return [sweep_dict(s, repo) for s in repo.list_sweeps(limit)]

    def search(self, text: str, limit: int) -> dict[str, Any]:
        """Prompts whose text, name or negative prompt contains ``text``, and their runs.

        Returns:
            ``{query, prompts, runs, prompts_total, runs_total}`` (see CosmosAPI.search).

        Raises:
            ValidationFailure: empty or overlong text, or a limit below 1.
        """
        if not text:
            raise ValidationFailure("the search text is empty")
        if len(text) > MAX_SEARCH_CHARS:
            raise ValidationFailure(
                f"the search text has {len(text)} characters; at most {MAX_SEARCH_CHARS}"
            )
        if limit < 1:
            raise ValidationFailure(f"--limit must be at least 1, got {limit}")
        found: dict[str, Any] = {"query": text, "prompts": [], "runs": []}
        if not self._ws.database_exists():
            return {**found, "prompts_total": 0, "runs_total": 0}
        hits = self._ws.repository.search(text, limit)
        found["prompts"] = [
            {**prompt_dict(p), "matched": matched_fields(p, text)} for p in hits.prompts
        ]
        found["runs"] = [run_dict(r, self._ws.store) for r in hits.runs]
        return {**found, "prompts_total": hits.prompts_total, "runs_total": hits.runs_total}

    def rate(self, given: str, rating: int | None) -> dict[str, Any]:
        """Rate a succeeded run 1-5 (None clears its rating); ``{id, rating, previous}``.

        Raises:
            ValidationFailure: a rating outside 1-5, not a run id, or a run that
            did not succeed; nothing changes. NotFoundFailure: no such run.
        """
        if rating is not None:
            check_rating(rating)
        run_id = self.resolve_id(given, "rs")
        previous = self._ws.repository.set_rating(run_id, rating)
        return {"id": run_id, "rating": rating, "previous": previous}

    # -- details ------------------------------------------------------------------------
    def show(self, given: str) -> dict[str, Any]:
        """Details of a prompt, run or sweep by id (or unique prefix)."""
        object_id = self.resolve_id(given)
        kind = object_id.split("_", 1)[0]
        handlers: dict[str, Callable[[str], dict[str, Any]]] = {
            "ps": self._show_prompt,
            "rs": self._show_run,
            "sw": self._show_sweep,
        }
        return handlers[kind](object_id)

    def _show_prompt(self, prompt_id: str) -> dict[str, Any]:
        repo = self._ws.repository
        data = prompt_dict(repo.get_prompt(prompt_id))
        data["runs"] = [r.id for r in repo.list_runs(prompt_id=prompt_id)]
        data["children"] = [
            {"id": child.id, "origin": child.origin} for child in repo.child_prompts([prompt_id])
        ]
        return data

    def _show_run(self, run_id: str) -> dict[str, Any]:
        repo = self._ws.repository
        run = repo.get_run(run_id)
        data = run_dict(run, self._ws.store, "sha256")
        # The control videos the program computed from the input (in the run's folder).
        controls = self._ws.store.control_videos(run_id)
        data["controls"] = {key: str(path) for key, path in controls.items()}
        data["spec"] = run.spec
        data["sweeps"] = repo.sweeps_of_run(run_id)
        data["children"] = [
            {"id": child.id, "adapter": child.adapter, "status": child.status.value}
            for child in repo.child_runs([run_id])
        ]
        return data

    def _show_sweep(self, sweep_id: str) -> dict[str, Any]:
        repo = self._ws.repository
        data = sweep_dict(repo.get_sweep(sweep_id), repo)
        data["runs"] = [
            {
                "id": run.id,
                "stage": link.stage.value,
                "params": link.params,
                "status": run.status.value,
            }
            for link, run in repo.sweep_runs(sweep_id)
        ]
        return data

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Counts by status, what is running where, each sweep under way, and each target's state.

        A target that cannot be reached is reported in its entry, never raised.
        """
        targets = [self._target_status(target) for target in self._ws.targets]
        # Work folders of jobs on this machine (local jobs, remote jobs' downloads).
        staging = len(self._ws.store.staging_folders())
        if not self._ws.database_exists():
            counts = {s.value: 0 for s in RunStatus}
            return {
                "counts": counts,
                "running": [],
                "active_sweeps": [],
                "database": self._ws.database_label(),
                "targets": targets,
                "staging_folders": staging,
            }
        repo = self._ws.repository
        running = repo.list_runs(RunStatus.RUNNING)
        return {
            "database": self._ws.database_label(),
            "counts": repo.counts_by_status(),
            "running": [
                {
                    "id": r.id,
                    "target": r.target,
                    "gpus": r.gpus,
                    "job_id": r.job_id,
                    "started_at": _iso(r.started_at),
                }
                for r in running
            ],
            "active_sweeps": self._active_sweeps(),
            "targets": targets,
            "staging_folders": staging,
        }

    def _active_sweeps(self) -> list[dict[str, Any]]:
        """Progress of each sweep that has queued or running runs."""
        now = self._ws.clock.now()
        repo = self._ws.repository
        return [
            sweep_status(sweep.id, sweep.name, repo.sweep_run_times(sweep.id), now)
            for sweep in repo.active_sweeps()
        ]

    def _target_status(self, target: ConfiguredTarget) -> dict[str, Any]:
        """One target's GPUs and containers, or why they are not known."""
        entry: dict[str, Any] = {"name": target.name, "source": target.source}
        if target.settings is None:
            return {**entry, "configured": False, "problem": target.problem}
        try:
            report = self._ws.executor_for(target.settings).describe().to_dict()
        except CosmosError as exc:
            report = {"name": target.name, "reachable": False, "error": f"{exc.kind}: {exc}"}
        return {**entry, "configured": True, **report}

    # -- deletion ------------------------------------------------------------------------------
    def delete_preview(
        self,
        kind: str,
        given: str | None = None,
        status: str | None = None,
        prompt: str | None = None,
    ) -> dict[str, Any]:
        """What a deletion would remove (for the confirmation question); see CosmosAPI."""
        if given is not None:
            if status is not None or prompt is not None:
                raise ValidationFailure("--status and --prompt select what --all deletes")
            ids = [self.resolve_id(given, _PREFIXES[kind])]
        else:
            ids = self._selected(kind, status, prompt)
        own, prompts, runs = self._descendants(kind, ids) if ids else ([], [], [])
        return {
            "id": ids[0] if given is not None else None,
            "ids": ids,
            "runs": own,
            "children": {"prompts": prompts, "runs": runs},
        }

    def _selected(self, kind: str, status: str | None, prompt: str | None) -> list[str]:
        """Every prompt or run that the filters select (--all)."""
        if kind == "prompt" and status is not None:
            raise ValidationFailure("--status selects runs; it cannot select prompts")
        wanted = _parse_status(status)
        _check_prompt_given(prompt)
        if not self._ws.database_exists():
            return []
        repo = self._ws.repository
        prompt_ids = self.prompt_ids(prompt) if prompt is not None else None
        if kind == "prompt":
            return prompt_ids if prompt_ids is not None else [p.id for p in repo.list_prompts()]
        return [run.id for run in repo.list_runs(wanted, prompt_ids=prompt_ids)]

    def _descendants(self, kind: str, ids: list[str]) -> tuple[list[str], list[str], list[str]]:
        """(their own runs, the prompts made from them, the runs made from them), at any depth.

        Made from a prompt: prompts whose parent it is, and their runs. Made
        from a run: runs whose parent it is (upscales), and their input prompts.
        """
        repo = self._ws.repository
        if kind == "prompt":
            own = [run.id for run in _chunked(repo.list_runs_of_prompts, ids)]
            seen_prompts, new_prompts = set(ids), list(ids)
        else:
            own, seen_prompts, new_prompts = list(ids), set(), []
        prompts: list[str] = []
        runs: list[str] = []
        seen_runs, new_runs = set(own), list(own)
        while new_prompts or new_runs:
            upscales = _chunked(repo.child_runs, new_runs)
            found = [p.id for p in _chunked(repo.child_prompts, new_prompts)]
            found += [run.prompt_id for run in upscales]
            new_prompts = [p for p in dict.fromkeys(found) if p not in seen_prompts]
            seen_prompts.update(new_prompts)
            found_runs = [run.id for run in upscales]
            found_runs += [run.id for run in _chunked(repo.list_runs_of_prompts, new_prompts)]
            new_runs = [r for r in dict.fromkeys(found_runs) if r not in seen_runs]
            seen_runs.update(new_runs)
            prompts += new_prompts
            runs += new_runs
        return own, prompts, runs

    def delete(
        self, kind: str, given: str | list[str], delete_outputs: bool, with_children: bool
    ) -> dict[str, Any]:
        """Delete a prompt (with its runs) or a run, or a list of them; see CosmosAPI.delete."""
        single = isinstance(given, str)
        ids = [self.resolve_id(given, _PREFIXES[kind])] if isinstance(given, str) else list(given)
        if not ids:
            return {
                "id": None,
                "ids": [],
                "deleted_runs": [],
                "deleted_prompts": [],
                "removed_outputs": [],
            }
        repo, store = self._ws.repository, self._ws.store
        with self._ws.runner_lock(exclusive=True):
            child_prompts: list[str] = []
            child_runs: list[str] = []
            if with_children:
                _, child_prompts, child_runs = self._descendants(kind, ids)
            run_ids = repo.delete_runs(child_runs)
            for prompt_id in reversed(child_prompts):
                run_ids += [r.id for r in repo.delete_prompt(prompt_id)]
            if kind == "run":
                run_ids += repo.delete_runs(ids)
            for prompt_id in ids if kind == "prompt" else []:
                try:
                    run_ids += [r.id for r in repo.delete_prompt(prompt_id)]
                except NotFoundFailure:
                    if single:
                        raise
            removed = [r for r in run_ids if delete_outputs and store.remove_run_dir(r)]
        return {
            "id": ids[0] if single else None,
            "ids": ids,
            "deleted_runs": run_ids,
            "deleted_prompts": child_prompts,
            "removed_outputs": removed,
        }

    # -- verify ------------------------------------------------------------------------------
    def verify(self, fix: bool, progress: StepProgress | None) -> VerifyReport:
        """The database against the run folders; see CosmosAPI.verify."""
        from cosmos_workflow.outputs.verify import verify_tree

        repository = self._ws.repository if self._ws.database_exists() else None
        return verify_tree(repository, self._ws.store, fix, progress)


# -- JSON-ready views ---------------------------------------------------------------------
def prompt_dict(prompt: Prompt) -> dict[str, Any]:
    """JSON-ready view of a prompt."""
    return {
        "id": prompt.id,
        "kind": "prompt",
        "name": prompt.name,
        "text": prompt.text,
        "negative_prompt": prompt.negative_prompt,
        "inputs": prompt.inputs,
        "created_at": _iso(prompt.created_at),
        "parent_id": prompt.parent_id,
        "origin": prompt.origin,
    }


def run_dict(run: Run, store: OutputStore, check: str | None = None) -> dict[str, Any]:
    """JSON-ready view of a run (``output_path``: its main output, if it is there).

    Args:
        run: The run.
        store: This output tree.
        check: How a succeeded run's folder is checked (outputs/verify.py):
            ``size`` or ``sha256``; None: not at all. ``damaged`` lists what
            is wrong with it (empty: nothing); None for a run not checked
            (not succeeded, or made in another output tree).
    """
    main = OUTPUT_PROMPT if run.adapter in UPSAMPLER_ADAPTERS else OUTPUT_VIDEO
    output = store.run_dir(run.id) / main
    damaged = None
    if check is not None and run.status is RunStatus.SUCCEEDED:
        damaged = succeeded_run_problems(store, run.id, run.output_dir, check == "sha256")
    return {
        "id": run.id,
        "kind": "run",
        "prompt_id": run.prompt_id,
        "parent_run_id": run.parent_run_id,
        "adapter": run.adapter,
        "status": run.status.value,
        "rating": run.rating,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "attempts": run.attempts,
        "exit_code": run.exit_code,
        "error_class": run.error_class,
        "error_message": run.error_message,
        "target": run.target,
        "gpus": run.gpus,
        "job_id": run.job_id,
        "output_dir": run.output_dir,
        "output_path": str(output) if output.is_file() else None,
        "damaged": damaged,
    }


def sweep_dict(sweep: Sweep, repository: DataRepository) -> dict[str, Any]:
    """JSON-ready view of a sweep with its run counts."""
    counts = repository.sweep_status_counts(sweep.id)
    return {
        "id": sweep.id,
        "kind": "sweep",
        "name": sweep.name,
        "created_at": _iso(sweep.created_at),
        "output_dir": sweep.output_dir,
        "overrides": sweep.overrides,
        "runs": sum(counts.values()),
        "counts": counts,
        "stages": repository.sweep_stage_sizes(sweep.id),
    }


def _chunked(query: Callable[[list[str]], list[Any]], ids: list[str]) -> list[Any]:
    """``query`` over ``ids`` a chunk at a time (a whole --all selection may be thousands)."""
    found: list[Any] = []
    for start in range(0, len(ids), _ID_CHUNK):
        found += query(ids[start : start + _ID_CHUNK])
    return found


def _check_prompt_given(prompt: str | None) -> None:
    if prompt is not None and not prompt.strip():
        raise ValidationFailure("--prompt is empty: give a prompt id (ps_...) or a prompt name")


def _parse_status(status: str | None) -> RunStatus | None:
    if status is None:
        return None
    try:
        return RunStatus(status)
    except ValueError as exc:
        known = ", ".join(s.value for s in RunStatus)
        raise ValidationFailure(f"unknown status {status!r} (one of: {known})") from exc


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
