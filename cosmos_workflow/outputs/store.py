"""The output tree: reproducible run and sweep folders, written atomically.

<outputs>/runs/<run_id>/      run.yaml spec.json command.txt inputs.sha256
                              logs/run.log output.mp4 output.txt
                              control_<key>.mp4 (control videos the program computed)
                              outputs.sha256 result.json
<outputs>/sweeps/<sweep_id>/  manifest.yaml overrides.yaml provenance.json
                              runs.jsonl
<outputs>/.staging/<job_id>/  work folders of running jobs (removed after)
"""

from __future__ import annotations

import fcntl
import json
import shlex
import shutil
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from cosmos_workflow.errors import StateError
from cosmos_workflow.execution.adapters.base import Invocation, RunOutputs
from cosmos_workflow.manifest.specs import RunSpec
from cosmos_workflow.utils.atomic import (
    move_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
    write_yaml_atomic,
)
from cosmos_workflow.utils.hashing import parse_sums, sha256_file, sums_text

RESULT_FILE = "result.json"
OUTPUT_VIDEO = "output.mp4"
OUTPUT_PROMPT = "output.txt"
# The key of result.json that names a run's main output (the video, or the upsampled text).
MAIN_OUTPUT = "main_output"
OUTPUTS_SUMS = "outputs.sha256"
# The key of result.json that names the control videos the program computed, by control key.
CONTROLS = "controls"
CONTROL_PREFIX = "control_"
RUN_LOG = "logs/run.log"
SWEEP_RECORD = ("manifest.yaml", "overrides.yaml", "provenance.json")
MANIFEST_HEADER = (
    "# @package _global_\n"
    "# The resolved manifest of this sweep. To run it again, copy it to\n"
    "# manifests/experiment/NAME.yaml and run cosmos-batch +experiment=NAME.\n"
)
MULTIRUN_HEADER = (
    "# A multirun's sweep: each Hydra job's number, overrides and resolved\n"
    "# manifest. To run it again, repeat the cosmos-batch -m command; to run one\n"
    "# job alone, copy its manifest to manifests/experiment/NAME.yaml.\n"
)


@dataclass(frozen=True)
class RunRecord:
    """What happened to one run in one job (written to result.json)."""

    status: str
    target: str
    gpus: list[int]
    job_id: str
    batch_size: int
    started_at: str
    finished_at: str
    exit_code: int | None
    attempts: int
    error_class: str | None = None
    error_message: str | None = None

    def to_dict(self, run_id: str, duration_s: float) -> dict[str, Any]:
        """JSON form for result.json."""
        return {
            "run_id": run_id,
            "status": self.status,
            "target": self.target,
            "gpus": self.gpus,
            "job_id": self.job_id,
            "batch_size": self.batch_size,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "durations": {"execution_s": round(duration_s, 3)},
            "exit_code": self.exit_code,
            "attempts": self.attempts,
            "error": (
                {"class": self.error_class, "message": self.error_message}
                if self.error_class
                else None
            ),
        }


def _yaml_text(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


class OutputStore:
    """Writes and reads the output tree under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def runs_dir(self) -> Path:
        """Folder of all run folders."""
        return self.root / "runs"

    @property
    def sweeps_dir(self) -> Path:
        """Folder of all sweep folders."""
        return self.root / "sweeps"

    @property
    def input_cache_dir(self) -> Path:
        """Verified copies of input files, by sha256."""
        return self.root / ".cache" / "inputs"

    def run_dir(self, run_id: str) -> Path:
        """The folder of one run."""
        return self.runs_dir / run_id

    def sweep_dir(self, sweep_id: str) -> Path:
        """The folder of one sweep."""
        return self.sweeps_dir / sweep_id

    @contextmanager
    def runner_lock(self, wait_s: float = 0.0, exclusive: bool = False) -> Iterator[None]:
        """Hold the output tree: shared by runners, exclusive for deletions.

        Several runners may execute runs in one output tree at once (their
        claims in the database keep them apart); a deletion waits until none
        is working. The lock is an flock on a local file: an output tree
        shared by several machines over a network file system is not supported.

        Args:
            wait_s: How long to wait for the lock.
            exclusive: Take it alone (deletions) rather than shared (runners).

        Raises:
            StateError: the lock is still held by others after ``wait_s``.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        with (self.root / ".runner.lock").open("a+") as handle:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(handle, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError as exc:
                    if time.monotonic() >= deadline:
                        what = "another runner is executing runs" if exclusive else "a deletion is"
                        raise StateError(
                            f"{what} in {self.root} ({socket.gethostname()}); "
                            "wait for it to finish and try again"
                        ) from exc
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def staging_folders(self) -> list[Path]:
        """The job work folders (jb_*) that exist now."""
        staging = self.root / ".staging"
        return sorted(staging.glob("jb_*")) if staging.is_dir() else []

    def staging(self, job_id: str) -> Path:
        """A fresh work folder for one job."""
        path = self.staging_path(job_id)
        path.mkdir(parents=True, exist_ok=False)
        return path

    def staging_path(self, job_id: str) -> Path:
        """Where a job's work folder is while the job runs (it may not exist)."""
        return self.root / ".staging" / job_id

    def run_log(self, run_id: str) -> Path:
        """The log kept in a run's folder (it may not exist)."""
        return self.run_dir(run_id) / RUN_LOG

    def discard_staging(self, path: Path) -> None:
        """Remove a job's work folder."""
        shutil.rmtree(path, ignore_errors=True)

    def remove_run_dir(self, run_id: str) -> bool:
        """Delete a run's folder; return True if there was one."""
        folder = self.run_dir(run_id)
        if not folder.is_dir():
            return False
        shutil.rmtree(folder)
        return True

    def read_result(self, run_id: str) -> dict[str, Any] | None:
        """The run's result.json, or None (none, or not a JSON object in UTF-8)."""
        path = self.run_dir(run_id) / RESULT_FILE
        if not path.is_file():
            return None
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # JSON and UTF-8 errors are ValueErrors
            return None
        return result if isinstance(result, dict) else None

    def control_videos(self, run_id: str) -> dict[str, Path]:
        """The control videos the program computed for the run, by control key.

        Those result.json lists that are in the run's folder (a folder
        written before control videos were kept lists none).
        """
        result = self.read_result(run_id) or {}
        listed = result.get(CONTROLS)
        if not isinstance(listed, dict):
            return {}
        folder = self.run_dir(run_id)
        return {
            str(key): folder / name
            for key, name in listed.items()
            if isinstance(name, str)
            and name.startswith(CONTROL_PREFIX)
            and Path(name).name == name
            and (folder / name).is_file()
        }

    def has_outputs(self, run_id: str) -> bool:
        """True if the run folder says succeeded and its outputs have their sizes.

        A cheap check (no hashing): the run's main output must be among the
        outputs result.json lists, and every one must be a file of the run's
        folder with the recorded size. :meth:`verify_outputs` checks sha256.
        """
        return self._sized_outputs(run_id) is not None

    def _sized_outputs(self, run_id: str) -> dict[str, Any] | None:
        """The outputs result.json lists (name -> size), if :meth:`has_outputs`; else None."""
        result = self.read_result(run_id)
        if not result or result.get("status") != "succeeded":
            return None
        folder = self.run_dir(run_id)
        sizes = result.get("outputs") or {}
        if not isinstance(sizes, dict) or _main_output(result, sizes) not in sizes:
            return None
        for name, size in sizes.items():
            path = folder / name
            if not own_file_name(name) or not path.is_file() or path.stat().st_size != size:
                return None
        return sizes

    def with_outputs(self, run_ids: Iterable[str]) -> list[str]:
        """The runs among ``run_ids`` that pass :meth:`has_outputs`, in the order given.

        The runs folder is listed once, so a run without a folder (most runs of
        a new sweep) costs no look-up on disk.
        """
        try:
            folders = {folder.name for folder in self.runs_dir.iterdir()}
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [run_id for run_id in run_ids if run_id in folders and self.has_outputs(run_id)]

    def verify_outputs(self, run_id: str) -> bool:
        """True if the run succeeded and every output matches outputs.sha256.

        result.json and outputs.sha256 must list the same outputs: a run
        that `cosmos verify` calls damaged is never taken for made.
        """
        sizes = self._sized_outputs(run_id)
        if sizes is None:
            return False
        folder = self.run_dir(run_id)
        try:
            recorded = read_sums(folder / OUTPUTS_SUMS)
        except (OSError, ValueError):
            return False
        if sorted(name for _, name in recorded) != sorted(sizes):
            return False
        for digest, name in recorded:
            target = folder / name
            if not target.is_file() or sha256_file(target) != digest:
                return False
        return True

    def _write_spec(self, folder: Path, spec: RunSpec) -> None:
        if self.verify_outputs(spec.id):
            raise StateError(f"run {spec.id} already succeeded; its outputs are never overwritten")
        write_yaml_atomic(folder / "run.yaml", spec.to_dict())
        inputs = [(item.sha256, str(item.path)) for item in spec.prompt.inputs.files()]
        write_text_atomic(folder / "inputs.sha256", sums_text(inputs))

    def _write_common(
        self, folder: Path, spec: RunSpec, invocation: Invocation, log_path: Path
    ) -> None:
        self._write_spec(folder, spec)
        write_json_atomic(folder / "spec.json", invocation.run_specs[spec.id])
        write_text_atomic(folder / "command.txt", shlex.join(invocation.argv) + "\n")
        log_bytes = log_path.read_bytes() if log_path.is_file() else b""
        write_bytes_atomic(folder / RUN_LOG, log_bytes)

    @staticmethod
    def _clear_outputs(folder: Path) -> None:
        for stale in (OUTPUT_VIDEO, OUTPUT_PROMPT, OUTPUTS_SUMS):
            (folder / stale).unlink(missing_ok=True)
        for stale in folder.glob(CONTROL_PREFIX + "*"):
            stale.unlink(missing_ok=True)

    def clear_stale_outputs(self, run_id: str) -> None:
        """Remove the outputs an earlier attempt left in a run's folder, as the run starts again.

        A run that runs again has no valid outputs (a damaged folder that
        `cosmos verify --fix` marked failed, a job that died before its record):
        what is left would pass for what the new job wrote. A folder whose
        outputs verify is a succeeded run's: it is left untouched.
        """
        folder = self.run_dir(run_id)
        if folder.is_dir() and not self.verify_outputs(run_id):
            self._clear_outputs(folder)

    def missing_outputs(self, staging: Path, outputs: RunOutputs, run_id: str) -> list[str]:
        """Output files the program should have written but did not.

        A video already moved into the run's folder counts: a runner killed
        while it recorded the run moved it there, and the runner that
        re-attaches to its job finishes the record (a job that starts anew
        cleared the folder first: :meth:`clear_stale_outputs`).
        """
        video = outputs.video
        moved = (self.run_dir(run_id) / outputs.stored_as).is_file()
        return [] if (staging / video).is_file() or moved else [video]

    def record_success(
        self,
        spec: RunSpec,
        invocation: Invocation,
        staging: Path,
        log_path: Path,
        record: RunRecord,
        duration_s: float,
    ) -> Path:
        """Move the run's outputs into its folder and write every record file."""
        folder = self.run_dir(spec.id)
        self._write_common(folder, spec, invocation, log_path)
        outputs = invocation.outputs[spec.id]
        placed, controls = _placements(staging, folder, outputs)
        sums = []
        sizes = {}
        for relative, name in placed:
            if (staging / relative).is_file():
                move_atomic(staging / relative, folder / name)
            elif not (folder / name).is_file():
                raise FileNotFoundError(f"output {relative} of run {spec.id} is gone")
            sums.append((sha256_file(folder / name), name))
            sizes[name] = (folder / name).stat().st_size
        for stale in folder.glob(CONTROL_PREFIX + "*"):
            if stale.name not in sizes:
                stale.unlink(missing_ok=True)
        write_text_atomic(folder / OUTPUTS_SUMS, sums_text(sums))
        result = record.to_dict(spec.id, duration_s)
        result["outputs"] = sizes
        result[MAIN_OUTPUT] = outputs.stored_as
        result[CONTROLS] = controls
        write_json_atomic(folder / RESULT_FILE, result)
        return folder

    def record_failure(
        self,
        spec: RunSpec,
        invocation: Invocation,
        log_path: Path,
        record: RunRecord,
        duration_s: float,
    ) -> Path:
        """Write the record files and log of a failed or cancelled run."""
        folder = self.run_dir(spec.id)
        self._write_common(folder, spec, invocation, log_path)
        self._clear_outputs(folder)
        write_json_atomic(folder / RESULT_FILE, record.to_dict(spec.id, duration_s))
        return folder

    def has_sweep_record(self, sweep_id: str) -> bool:
        """True if the sweep folder already holds its manifest and provenance."""
        folder = self.sweep_dir(sweep_id)
        return all((folder / name).is_file() for name in SWEEP_RECORD)

    def record_unstarted(self, spec: RunSpec, record: RunRecord) -> Path:
        """Record a run that failed before its program started (e.g. bad input)."""
        folder = self.run_dir(spec.id)
        self._write_spec(folder, spec)
        self._clear_outputs(folder)
        write_json_atomic(folder / RESULT_FILE, record.to_dict(spec.id, 0.0))
        return folder

    def write_sweep(
        self,
        sweep_id: str,
        manifest: dict[str, Any],
        overrides: list[str] | list[list[str]],
        provenance: dict[str, Any],
    ) -> Path:
        """Write the sweep's manifest, overrides and provenance.

        A multirun's sweep has a manifest with every job's overrides and
        resolved manifest under ``jobs``, and one list of overrides per job.
        """
        folder = self.sweep_dir(sweep_id)
        header = MULTIRUN_HEADER if "jobs" in manifest else MANIFEST_HEADER
        write_text_atomic(folder / "manifest.yaml", header + _yaml_text(manifest))
        write_yaml_atomic(folder / "overrides.yaml", list(overrides))
        write_json_atomic(folder / "provenance.json", provenance)
        return folder

    def write_sweep_runs(self, sweep_id: str, rows: list[dict[str, Any]]) -> None:
        """Write runs.jsonl: one line per run (id, params, status, dir)."""
        text = "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows)
        write_text_atomic(self.sweep_dir(sweep_id) / "runs.jsonl", text)


def _placements(
    staging: Path, folder: Path, outputs: RunOutputs
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Which outputs go into the run folder, and the computed controls among them.

    The main output always (its absence is an error); the final prompt and
    each computed control video when the program wrote it (or a runner killed
    while it recorded the run already moved it into the folder).

    Returns:
        (job-folder path, run-folder name) pairs, and control key -> name.
    """
    placed = [(outputs.video, outputs.stored_as)]
    controls = {}
    optional = [(outputs.extras.get("prompt"), OUTPUT_PROMPT, None)]
    for key in sorted(outputs.controls):
        relative = outputs.controls[key]
        optional.append((relative, control_name(key, relative), key))
    for relative, name, key in optional:
        if relative and ((staging / relative).is_file() or (folder / name).is_file()):
            placed.append((relative, name))
            if key is not None:
                controls[key] = name
    return placed, controls


def control_name(key: str, relative: str) -> str:
    """A computed control video's name in the run folder: ``control_<key>`` and its suffix."""
    return f"{CONTROL_PREFIX}{key}{PurePosixPath(relative).suffix or '.mp4'}"


def own_file_name(name: object) -> bool:
    """True if ``name`` (as a record file gives it) names a file of the run's folder itself."""
    return isinstance(name, str) and Path(name).name == name and name not in ("", ".", "..")


def read_sums(path: Path) -> list[tuple[str, str]]:
    """The (sha256, name) pairs of a checksum file (sha256sum format, escaped names too).

    Raises:
        OSError: it cannot be read. ValueError: a line is not in that format.
    """
    return parse_sums(path.read_text(encoding="utf-8"))


def _main_output(result: dict[str, Any], sizes: dict[str, Any]) -> str | None:
    """The main output's name that result.json gives.

    A folder written before result.json named it holds a video, or for an
    enhancement run only the upsampled text.
    """
    if MAIN_OUTPUT not in result:
        return OUTPUT_PROMPT if list(sizes) == [OUTPUT_PROMPT] else OUTPUT_VIDEO
    main = result[MAIN_OUTPUT]
    return main if isinstance(main, str) else None
