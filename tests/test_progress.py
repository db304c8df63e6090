"""Progress: the live display on a terminal, log lines otherwise, `cosmos status` from the DB.

The sinks are driven with the event sequences the runner sends (and with
the real runner), on a rich Console that writes to a string as a terminal
would; a tiny screen model replays its cursor moves to get what a user sees.
Time comes from an injected fake clock, never from sleeps.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from datetime import timedelta
from typing import Any

import pytest
import yaml
from conftest import Project
from rich.console import Console
from test_cli import run_all
from test_database import T0, FakeClock, make_prompt, make_spec
from test_logs_kill_status import wait_for_rows

from cosmos_workflow.api.cosmos_api import CosmosAPI
from cosmos_workflow.cli.console import PlainProgress, RichProgress
from cosmos_workflow.config.manager import ConfigManager
from cosmos_workflow.config.project import ProjectPaths
from cosmos_workflow.config.sources import ConfigSources
from cosmos_workflow.database.models import RunStatus, SweepStage
from cosmos_workflow.engine.eta import active_since, eta_seconds, format_duration

PROGRESS_LOGGER = "cosmos_workflow.progress"
# Four runs in two jobs of two (the demo with one depth weight).
SMALL = ("+experiment=demo", "model.weights.depth=0.5")
SWEEP_KEYS = {"id", "name", "counts", "stage", "stages", "eta_s", "active_since", "jobs"}
JOB_KEYS = {"job_id", "target", "gpus", "runs", "run_ids", "started_at", "elapsed_s"}
COUNT_KEYS = {"pending", "queued", "running", "succeeded", "failed", "cancelled", "total"}


# ---------------------------------------------------------------- helpers

_TOKEN = re.compile(r"\x1b\[\??([0-9;]*)([A-Za-z])|\r|\n|[^\x1b\r\n]+")


def screen(raw: str) -> list[str]:
    """Replay text, carriage returns, cursor-up and erase-line codes: the lines on screen."""
    lines, row, col = [""], 0, 0
    for match in _TOKEN.finditer(raw):
        text = match.group()
        if text == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif text == "\r":
            col = 0
        elif match.group(2) == "A":
            row = max(0, row - int(match.group(1) or 1))
        elif match.group(2) == "K":
            lines[row] = ""
        elif match.group(2) is None:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + text + line[col + len(text) :]
            col += len(text)
    return [line.rstrip() for line in lines]


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=120, color_system="standard")


def shown(console: Console) -> str:
    assert isinstance(console.file, io.StringIO)
    return "\n".join(screen(console.file.getvalue()))


def count(text: str, name: str) -> int:
    """The number after ``name`` in the counts line (exactly one on screen)."""
    found = re.findall(rf"\b{name} (\d+)\b", text)
    assert len(found) == 1, (name, text)
    return int(found[0])


def eta_of(text: str) -> str:
    found = re.findall(r"\beta (\S+)", text)
    assert len(found) == 1, text
    return found[0]


def busy_lines(text: str) -> list[str]:
    """Lines of busy GPU slots: they name a job."""
    return [
        line.strip() for line in text.splitlines() if re.search(r"\bjb_\w+\s+\d+ runs?\b", line)
    ]


def plain_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == PROGRESS_LOGGER]


# ---------------------------------------------------------------- the ETA


@pytest.mark.parametrize(
    ("processed", "left", "elapsed", "expected"),
    [
        (0, 10, 30.0, None),  # nothing finished yet: unknown, not a guess
        (0, 10, 0.0, None),
        (3, 0, 30.0, 0.0),  # nothing left
        (1, 9, 30.0, 270.0),
        (2, 8, 30.0, 120.0),
        (4, 1, 10.0, 2.5),
        (5, 5, 0.0, None),  # no time has passed: no throughput to speak of
    ],
)
def test_eta_is_runs_left_at_the_observed_throughput(
    processed: int, left: int, elapsed: float, expected: float | None
) -> None:
    assert eta_seconds(processed, left, elapsed) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "unknown"),
        (0.0, "0s"),
        (0.4, "0s"),
        (59.4, "59s"),
        (59.6, "1m00s"),
        (190.0, "3m10s"),
        (3599.0, "59m59s"),
        (3600.0, "1h00m"),
        (3725.0, "1h02m"),
        (100 * 3600.0, "100h00m"),
    ],
)
def test_durations_read_like_a_clock(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def at(seconds: float) -> Any:
    return T0 + timedelta(seconds=seconds)


def test_the_active_stretch_skips_an_earlier_pass_and_chains_back_to_back_jobs() -> None:
    now = at(1000)
    spans = [
        (at(0), at(50)),  # yesterday's pass (for this scale: long before)
        (at(900), at(940)),  # first job of this pass
        (at(940.2), at(980)),  # second job, claimed as the first ended
        (at(980.1), None),  # running now
    ]
    assert active_since(spans, now, gap_s=60) == at(900)
    # Nothing running and the last run ended within the gap: still active.
    assert active_since(spans[:3], now, gap_s=60) == at(900)
    # Nothing for longer than the gap: no active stretch, so no throughput.
    assert active_since(spans[:3], at(980 + 61), gap_s=60) is None
    assert active_since([], now, gap_s=60) is None
    # A gap inside the gap allowance is bridged (a retry waiting a few seconds).
    assert active_since([(at(100), at(130)), (at(170), None)], at(200), gap_s=60) == at(100)


# ---------------------------------------------------------------- terminal


def test_terminal_display_shows_counts_busy_gpus_and_an_honest_eta() -> None:
    clock = FakeClock(T0)
    console = terminal()
    sink = RichProgress(console, clock)
    sink.start(12, 2, 10)
    clock.advance(5)  # preparing: not part of the throughput
    sink.job_started("jb_a", ["rs_1", "rs_2"], "local", [0])
    sink.job_started("jb_b", ["rs_3"], "gpu2", [0, 1])
    text = shown(console)
    assert "12 runs: 2 cached, 10 to run" in text
    assert [count(text, n) for n in ("done", "running", "failed", "cancelled", "cached")] == [
        0,
        3,
        0,
        0,
        2,
    ]
    assert count(text, "left") == 7
    assert eta_of(text) == "unknown"
    slots = busy_lines(text)
    assert len(slots) == 2, text
    local = next(line for line in slots if "jb_a" in line)
    remote = next(line for line in slots if "jb_b" in line)
    assert re.search(r"local\s+gpus 0\s+jb_a\s+2 runs\s+0s", local), local
    assert re.search(r"gpu2\s+gpus 0,1\s+jb_b\s+1 run\s+0s", remote), remote

    clock.advance(30)
    sink.run_finished("rs_1", "succeeded", 30.0, "/outputs/runs/rs_1")
    text = shown(console)
    assert (count(text, "done"), count(text, "running"), count(text, "left")) == (1, 2, 7)
    assert eta_of(text) == "4m30s"  # 9 runs left at 1 run per 30 s
    assert all(line.endswith("30s") for line in busy_lines(text)), text

    sink.run_finished("rs_2", "failed", 30.0, "the model exited with code 17")
    text = shown(console)
    assert (count(text, "failed"), count(text, "running"), count(text, "left")) == (1, 1, 7)
    assert eta_of(text) == "2m00s"  # 8 left at 2 per 30 s
    failure = next(i for i, line in enumerate(text.splitlines()) if "rs_2 failed" in line)
    assert "the model exited with code 17" in text.splitlines()[failure]
    counts_row = next(i for i, line in enumerate(text.splitlines()) if "done 1" in line)
    assert failure < counts_row, "the failure must be printed above the live area"

    sink.job_finished("jb_a", "local", [0])
    text = shown(console)
    assert len(busy_lines(text)) == 1 and "jb_b" in busy_lines(text)[0], text

    sink.note("target gpu2 unreachable; its runs go elsewhere")
    sink.finish()
    text = shown(console)
    assert "target gpu2 unreachable; its runs go elsewhere" in text
    assert count(text, "done") == 1, "the final state stays on screen"


def test_terminal_display_is_coloured_and_survives_odd_event_orders() -> None:
    clock = FakeClock(T0)
    console = terminal()
    sink = RichProgress(console, clock)
    sink.start(3, 0, 3)
    # Cancelled while queued, before anything started: no throughput yet.
    sink.run_finished("rs_1", "cancelled", 0.0, "cancelled by cosmos kill")
    sink.job_finished("jb_never_started", "local", [0])
    text = shown(console)
    assert (count(text, "cancelled"), count(text, "left")) == (1, 2)
    assert eta_of(text) == "unknown"
    assert "rs_1 cancelled" in text and "cancelled by cosmos kill" in text
    # A job's end may come before its runs are recorded (GPUs are free first).
    sink.job_started("jb_a", ["rs_2", "rs_3"], "local", [0])
    clock.advance(8)
    sink.job_finished("jb_a", "local", [0])
    text = shown(console)
    assert busy_lines(text) == [], "the GPU is free"
    assert (count(text, "running"), count(text, "left")) == (2, 0), "until they are recorded"
    sink.run_finished("rs_2", "succeeded", 8.0, "ok")
    sink.run_finished("rs_3", "succeeded", 8.0, "ok")
    sink.finish()
    sink.finish()  # twice is harmless
    text = shown(console)
    assert (count(text, "done"), count(text, "running"), count(text, "left")) == (2, 0, 0)
    assert eta_of(text) == "0s"
    assert busy_lines(text) == []
    assert "\x1b[" in console.file.getvalue(), "a terminal gets colour"


def test_runs_queued_again_after_a_lost_host_are_not_running() -> None:
    # Two slots; both jobs lose their host and their runs go back to the queue
    # while two other jobs take the slots: never more running than the slots hold.
    clock = FakeClock(T0)
    console = terminal()
    sink = RichProgress(console, clock)
    sink.start(8, 0, 8)
    sink.job_started("jb_a", ["rs_1", "rs_2", "rs_3"], "gpu1", [0])
    sink.job_started("jb_b", ["rs_4", "rs_5", "rs_6"], "gpu1", [1])
    for job, runs in (("jb_a", ["rs_1", "rs_2", "rs_3"]), ("jb_b", ["rs_4", "rs_5", "rs_6"])):
        sink.job_finished(job, "gpu1", [0])
        sink.runs_requeued(runs)
    assert (count(shown(console), "running"), count(shown(console), "left")) == (0, 8)
    sink.job_started("jb_c", ["rs_7"], "gpu2", [0])
    sink.job_started("jb_d", ["rs_8", "rs_1"], "gpu2", [1])
    clock.advance(5)
    sink.job_finished("jb_c", "gpu2", [0])
    sink.run_finished("rs_7", "succeeded", 5.0, "ok")
    text = shown(console)
    assert (count(text, "done"), count(text, "running"), count(text, "left")) == (1, 2, 5)
    sink.finish()


def test_plain_lines_count_runs_queued_again_as_left(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS_LOGGER)
    sink = PlainProgress(FakeClock(T0))
    sink.start(4, 0, 4)
    sink.job_started("jb_a", ["rs_1", "rs_2"], "local", [0])
    sink.job_finished("jb_a", "local", [0])
    sink.runs_requeued(["rs_2"])
    sink.run_finished("rs_1", "failed", 1.0, "boom")
    *_, line = plain_lines(caplog)
    assert "running 0" in line and "left 3" in line, line


def test_a_display_that_never_started_can_finish() -> None:
    console = terminal()
    sink = RichProgress(console, FakeClock(T0))
    sink.finish()
    assert shown(console).strip() == ""


# ---------------------------------------------------------------- plain lines


def test_plain_lines_have_the_job_the_counts_and_the_eta(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS_LOGGER)
    clock = FakeClock(T0)
    sink = PlainProgress(clock)
    sink.start(12, 2, 10)
    sink.run_finished("rs_0", "cancelled", 0.0, "cancelled by cosmos kill")
    clock.advance(3)
    sink.job_started("jb_a", ["rs_1", "rs_2"], "local", [0, 1])
    sink.log_line("jb_a", "model output")  # not an INFO line
    clock.advance(20)
    sink.run_finished("rs_1", "succeeded", 1.24, "/outputs/runs/rs_1")
    sink.job_finished("jb_a", "local", [0, 1])
    sink.note("retrying job jb_b in 4s: network: connection reset")
    sink.finish()
    lines = plain_lines(caplog)
    assert lines[0] == "12 runs: 2 cached, 10 to run"
    cancelled, started, succeeded, ended, note = lines[1:]
    assert cancelled.startswith("[1/10] rs_0 cancelled in 0.0s")
    assert "eta unknown" in cancelled and "cancelled by cosmos kill" in cancelled
    assert all(word in started for word in ("jb_a", "local", "gpus 0,1", "2 runs")), started
    assert succeeded.startswith("[2/10] rs_1 succeeded in 1.2s"), succeeded
    # 8 left at 1 run per 20 s since the first job started
    assert "eta 2m40s" in succeeded and "/outputs/runs/rs_1" in succeeded
    for name, value in (("done", 1), ("running", 1), ("failed", 0), ("cancelled", 1)):
        assert f"{name} {value}" in succeeded, succeeded
    assert "left 7" in succeeded
    assert "jb_a" in ended and "local" in ended and "20s" in ended, ended
    assert note == "retrying job jb_b in 4s: network: connection reset"
    assert not any("\x1b" in line for line in lines)


# ---------------------------------------------------------------- threads


def drive_concurrently(sink: Any, clock: FakeClock, jobs: int, runs_per_job: int) -> None:
    """Several worker threads each run one job at once, as the scheduler does."""
    sink.start(jobs * runs_per_job, 0, jobs * runs_per_job)
    barrier = threading.Barrier(jobs)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            job_id = f"jb_{index:04d}"
            run_ids = [f"rs_{index:04d}_{n}" for n in range(runs_per_job)]
            target, gpus = f"gpu{index % 3}", [index // 3]
            barrier.wait()
            sink.job_started(job_id, run_ids, target, gpus)
            barrier.wait()
            for n, run_id in enumerate(run_ids):
                sink.log_line(job_id, f"step {n}")
                status = "failed" if n == 0 and index % 4 == 0 else "succeeded"
                sink.run_finished(run_id, status, 1.0, "boom" if status == "failed" else "ok")
            sink.job_finished(job_id, target, gpus)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(jobs)]
    clock.advance(1)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    sink.finish()
    assert not errors, errors


def test_terminal_display_takes_events_from_many_threads_at_once() -> None:
    clock = FakeClock(T0)
    console = terminal()
    sink = RichProgress(console, clock)
    drive_concurrently(sink, clock, jobs=12, runs_per_job=5)
    text = shown(console)
    assert (count(text, "done"), count(text, "failed")) == (57, 3)
    assert (count(text, "running"), count(text, "left")) == (0, 0)
    assert busy_lines(text) == []
    assert sorted(re.findall(r"rs_(\d{4})_0 failed", text)) == ["0000", "0004", "0008"]


def test_terminal_display_shows_every_busy_slot_of_concurrent_jobs() -> None:
    clock = FakeClock(T0)
    console = terminal()
    sink = RichProgress(console, clock)
    sink.start(18, 0, 18)
    barrier = threading.Barrier(6)

    def worker(index: int) -> None:
        barrier.wait()
        sink.job_started(f"jb_{index:04d}", [f"rs_{index}_{n}" for n in range(3)], "h", [index])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    sink.run_finished("rs_0_0", "succeeded", 1.0, "ok")  # one more refresh, after all starts
    text = shown(console)
    slots = busy_lines(text)
    assert sorted(re.search(r"jb_\d{4}", line).group() for line in slots) == [
        f"jb_{i:04d}" for i in range(6)
    ]
    assert (count(text, "running"), count(text, "left")) == (17, 0)
    sink.finish()


def test_plain_lines_count_every_run_once_from_many_threads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS_LOGGER)
    clock = FakeClock(T0)
    drive_concurrently(PlainProgress(clock), clock, jobs=12, runs_per_job=5)
    lines = plain_lines(caplog)
    numbers = [int(m.group(1)) for line in lines if (m := re.match(r"\[(\d+)/60\] ", line))]
    assert numbers == list(range(1, 61)), "each run counted once, lines in order"
    last = next(line for line in lines if line.startswith("[60/60] "))
    assert "done 57" in last and "failed 3" in last and "left 0" in last, last
    for index in range(12):
        job = f"jb_{index:04d}"
        assert len([line for line in lines if job in line]) == 2, job  # started, ended


# ---------------------------------------------------------------- real runner


def project_api(project: Project, *overrides: str, env: dict[str, str] | None = None) -> Any:
    """A CosmosAPI on ``project`` and the plan of ``overrides`` (as cosmos-batch composes it)."""
    composed = yaml.safe_load(project.batch(*overrides, "--cfg", "job").stdout)
    settings = ConfigManager(ProjectPaths(project.root), {**project.env, **(env or {})}).settings(
        composed
    )
    api = CosmosAPI(settings)
    plan = api.plan_sweep(ConfigManager.manifest_part(composed), [], ConfigSources([], "test"))
    return api, plan


def test_the_runner_drives_the_terminal_display_to_its_end(project: Project) -> None:
    """Every job the real runner starts is shown, then freed; failures are on screen."""
    api, plan = project_api(
        project, "+experiment=demo", env={"COSMOS_SIMULATOR__FAIL_ON_SEED": "2"}
    )
    console = terminal()
    with api:
        summary = api.run_sweep(plan, RichProgress(console))
    text = shown(console)
    assert (count(text, "done"), count(text, "failed")) == (6, 6)
    assert (count(text, "running"), count(text, "left"), count(text, "cached")) == (0, 0, 0)
    assert busy_lines(text) == [], "every job's GPUs were freed"
    for run_id in summary.tally.failed:
        assert f"{run_id} failed" in text
    # While it ran, the display named the jobs on the local target's GPU.
    raw = console.file.getvalue()
    assert re.search(r"local\s+gpus 0\s+jb_\w+\s+\d+ runs?", raw), raw[-2000:]


# ---------------------------------------------------------------- status from the DB


def demo_api(project: Project, clock: FakeClock) -> CosmosAPI:
    """The API of the demo's settings, on the project's database, with a fake clock."""
    composed = yaml.safe_load(project.batch("+experiment=demo", "--cfg", "job").stdout)
    settings = ConfigManager(ProjectPaths(project.root), project.env).settings(composed)
    return CosmosAPI(settings, clock=clock)


def test_status_eta_comes_from_this_pass_of_the_sweep(project: Project) -> None:
    """Throughput counts the runs finished since the active stretch began, not last week's."""
    clock = FakeClock(T0)
    with demo_api(project, clock) as api:
        repo = api.repository
        prompt = make_prompt("a harbor")
        specs = [make_spec(prompt, seed) for seed in range(7)]
        ids = [spec.id for spec in specs]
        repo.add_prompts([prompt])
        repo.add_runs(specs)
        repo.add_sweep("sw_test", "harbor", {}, [], "/nowhere", specs)
        repo.add_sweep("sw_over", "over", {}, [], "/nowhere", specs[:2])

        # Last week: two runs took an hour.
        repo.transition(ids[:2], RunStatus.QUEUED)
        repo.claim(ids[:2], target="local", gpus="0", job_id="jb_old")
        clock.advance(3600)
        for run_id in ids[:2]:
            assert repo.settle(run_id, RunStatus.SUCCEEDED)
        clock.advance(7 * 86400)

        # This pass: one job of two runs (10 s), then one more running for 5 s.
        repo.transition(ids[2:], RunStatus.QUEUED)
        assert api.status()["active_sweeps"][0]["eta_s"] is None, "nothing ran yet"
        repo.claim(ids[2:4], target="local", gpus="0", job_id="jb_a")
        clock.advance(10)
        assert repo.settle(ids[2], RunStatus.SUCCEEDED)
        assert repo.settle(ids[3], RunStatus.FAILED, error_class="execution", error_message="x")
        repo.claim(ids[4:6], target="gpu2", gpus="0,1", job_id="jb_b")
        clock.advance(5)

        data = api.status()
        assert [s["id"] for s in data["active_sweeps"]] == ["sw_test"], "sw_over is over"
        sweep = data["active_sweeps"][0]
        assert set(sweep) == SWEEP_KEYS and sweep["name"] == "harbor"
        assert sweep["counts"] == {
            "pending": 0,
            "queued": 1,
            "running": 2,
            "succeeded": 3,
            "failed": 1,
            "cancelled": 0,
            "total": 7,
        }
        # 3 unfinished runs at 2 runs per 15 s.
        assert sweep["eta_s"] == pytest.approx(22.5)
        assert sweep["active_since"] == at(3600 + 7 * 86400).isoformat()
        (job,) = sweep["jobs"]
        assert set(job) == JOB_KEYS
        assert (job["job_id"], job["target"], job["gpus"], job["runs"]) == (
            "jb_b",
            "gpu2",
            [0, 1],
            2,
        )
        assert sorted(job["run_ids"]) == sorted(ids[4:6])
        assert job["elapsed_s"] == pytest.approx(5.0)

        # Everything stops; ten minutes later the queued run is all that is left.
        for run_id in ids[4:6]:
            assert repo.settle(run_id, RunStatus.SUCCEEDED)
        clock.advance(600)
        (stale,) = api.status()["active_sweeps"]
        assert stale["counts"]["queued"] == 1 and stale["jobs"] == []
        assert stale["eta_s"] is None and stale["active_since"] is None, "no work is going on"

        repo.cancel_unfinished(ids, "test over")
        assert api.status()["active_sweeps"] == []


def test_status_counts_the_sweeps_own_runs_and_times_the_stage_under_way(
    project: Project,
) -> None:
    """An upscale stage: its runs are counted apart, and the ETA is theirs."""
    clock = FakeClock(T0)
    with demo_api(project, clock) as api:
        repo = api.repository
        prompt = make_prompt("a harbor")
        own = [make_spec(prompt, seed) for seed in range(2)]
        upscales = [make_spec(prompt, seed) for seed in range(10, 14)]
        repo.add_prompts([prompt])
        repo.add_runs(own + upscales)
        repo.add_sweep("sw_stages", "harbor", {}, [], "/nowhere", own)
        # The sweep's own runs were slow (an hour each)...
        repo.transition([s.id for s in own], RunStatus.QUEUED)
        repo.claim([s.id for s in own], target="local", gpus="0", job_id="jb_own")
        clock.advance(3600)
        for spec in own:
            assert repo.settle(spec.id, RunStatus.SUCCEEDED)
        # ... its upscales are quick: one took 10 s, one runs, two wait.
        up = [s.id for s in upscales]
        assert repo.link_stage_runs("sw_stages", SweepStage.UPSCALE, [(i, {}) for i in up], up)
        repo.claim(up[:1], target="local", gpus="0", job_id="jb_up1")
        clock.advance(10)
        assert repo.settle(up[0], RunStatus.SUCCEEDED)
        repo.claim(up[1:2], target="local", gpus="0", job_id="jb_up2")

        (sweep,) = api.status()["active_sweeps"]
        assert sweep["stage"] == "upscale"
        assert sweep["counts"]["succeeded"] == 2 and sweep["counts"]["total"] == 2
        upscale = sweep["stages"]["upscale"]
        assert (upscale["succeeded"], upscale["running"], upscale["queued"]) == (1, 1, 2)
        assert upscale["total"] == 4 and set(sweep["stages"]) == {"upscale"}
        # 3 upscales left at one per 10 s (the own runs' hour is not this stage's pace).
        assert sweep["eta_s"] == pytest.approx(30)
        assert [job["job_id"] for job in sweep["jobs"]] == ["jb_up2"]
        listed = api.list_sweeps()[0]
        assert listed["runs"] == 2 and listed["stages"] == {"upscale": 4}


def test_status_follows_a_sweep_that_runs_in_another_process(project: Project) -> None:
    # Each job of two runs takes about 3 + 2 x 1.5 s: time for `cosmos status` (in this
    # process, well under a second) to look twice.
    env = {"COSMOS_SIMULATOR__MODEL_LOAD_S": "3", "COSMOS_SIMULATOR__PER_VIDEO_S": "1.5"}
    runner = project.start_batch(*SMALL, env=env)
    try:
        wait_for_rows(project, "SELECT 1 FROM runs WHERE status = 'running'")
        first = run_all(project, {"json": ("status", "--json"), "text": ("status",)})
        # The second job runs; the first one's runs are recorded.
        wait_for_rows(
            project,
            "SELECT 1 FROM runs WHERE status = 'running' AND "
            "(SELECT COUNT(*) FROM runs WHERE status = 'succeeded') = 2",
        )
        second = run_all(project, {"json": ("status", "--json"), "text": ("status",)})
        assert runner.wait(timeout=120) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()

    data = json.loads(first["json"].stdout)
    (sweep,) = data["active_sweeps"]
    assert set(sweep) == SWEEP_KEYS and sweep["name"] == "demo"
    counts = sweep["counts"]
    assert set(counts) == COUNT_KEYS
    assert counts["total"] == 4 == sum(v for k, v in counts.items() if k != "total")
    assert (counts["running"], counts["queued"], counts["succeeded"]) == (2, 2, 0), counts
    assert sweep["eta_s"] is None, "no run has finished: the ETA is unknown"
    (job,) = sweep["jobs"]
    assert set(job) == JOB_KEYS
    assert (job["target"], job["gpus"], job["runs"]) == ("local", [0], 2)
    assert 0 <= job["elapsed_s"] < 60
    text = first["text"].stdout
    assert re.search(rf"sweep {sweep['id']} demo: .*2 running, 2 queued", text), text
    assert "eta unknown" in text
    assert re.search(rf"job {job['job_id']} on local gpus 0: 2 runs", text), text

    data = json.loads(second["json"].stdout)
    (sweep,) = data["active_sweeps"]
    counts = sweep["counts"]
    assert (counts["running"], counts["queued"], counts["succeeded"]) == (2, 0, 2), counts
    assert sweep["eta_s"] is not None and 0 < sweep["eta_s"] < 60, sweep
    (later_job,) = sweep["jobs"]
    assert later_job["job_id"] != job["job_id"]
    assert re.search(r"eta \d+s", second["text"].stdout), second["text"].stdout

    after = run_all(project, {"json": ("status", "--json"), "text": ("status",)})
    assert json.loads(after["json"].stdout)["active_sweeps"] == []
    assert "no active sweep" in after["text"].stdout


def test_status_without_a_database_has_no_active_sweep(project: Project) -> None:
    data = project.cosmos_json("status")
    assert data["active_sweeps"] == []
    assert not (project.outputs / "cosmos.db").exists()
