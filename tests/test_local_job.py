"""The supervisor of local jobs: a job runs once, or never if a runner gave it up."""

from __future__ import annotations

import sys
from pathlib import Path

from cosmos_workflow.execution.programs import local_job


def supervise(folder: Path, *program: str) -> int:
    return local_job.main(
        [
            str(folder / "job.log"),
            str(folder / "job.exit"),
            str(folder / local_job.START_NAME),
            "--",
            *program,
        ]
    )


def test_with_its_start_token_the_program_runs_and_its_exit_code_is_kept(tmp_path: Path) -> None:
    (tmp_path / local_job.START_NAME).write_text("jb_x\n")
    code = supervise(tmp_path, sys.executable, "-c", "print('made it'); raise SystemExit(3)")
    assert code == 0
    assert (tmp_path / "job.exit").read_text().strip() == "3"
    assert "made it" in (tmp_path / "job.log").read_text()
    assert (tmp_path / local_job.STARTED_NAME).is_file()
    assert (tmp_path / local_job.PID_NAME).read_text().splitlines()[0].isdigit()


def test_a_job_given_up_before_it_started_never_runs(tmp_path: Path) -> None:
    (tmp_path / local_job.START_NAME).write_text("jb_x\n")
    # The next runner found the job not started and took its token away.
    assert local_job.claim_start(tmp_path / local_job.START_NAME, local_job.ABANDONED_NAME)
    marker = tmp_path / "ran"
    code = supervise(tmp_path, sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert code == 0
    assert not marker.exists() and not (tmp_path / "job.exit").exists()
    assert not (tmp_path / local_job.PID_NAME).exists()


def test_only_one_of_two_takes_the_token(tmp_path: Path) -> None:
    token = tmp_path / local_job.START_NAME
    token.write_text("jb_x\n")
    assert local_job.claim_start(token) is True
    assert local_job.claim_start(token, local_job.ABANDONED_NAME) is False


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert local_job.main([str(tmp_path / "log")]) == 2
