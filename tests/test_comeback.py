"""A host that answers again: which jobs left there are followed again (engine/comeback.py).

The end-to-end cases (a cut link with one and two targets) are in
tests/test_outages.py; these are the boundaries of the rule itself.
"""

from __future__ import annotations

from test_identity_and_expansion import make_run

from cosmos_workflow.engine.comeback import LeftJob, sort_out
from cosmos_workflow.engine.scheduler import PlannedJob
from cosmos_workflow.manifest.specs import RunSpec

RUNS = [make_run(text=f"scene {index}") for index in range(6)]


def planned(*runs: RunSpec) -> PlannedJob:
    return PlannedJob(list(runs), "simulated", 1, tries=1)


def left(job_id: str, *runs: RunSpec) -> LeftJob:
    return LeftJob(job_id, tuple(run.id for run in runs), (0,))


def test_a_job_whose_runs_all_wait_is_followed_and_its_runs_leave_the_plan() -> None:
    a, b, c, d = RUNS[:4]
    # Its runs were planned again as one job with another job's runs.
    plan = sort_out([left("jb_1", b, a)], [planned(a, b, c), planned(d)])
    assert plan.follow == [left("jb_1", b, a)] and plan.stop == []
    assert [job.run_ids for job in plan.pending] == [[c.id], [d.id]]


def test_a_job_whose_runs_moved_even_in_part_is_stopped_never_followed_in_part() -> None:
    a, b, c = RUNS[:3]
    # b started elsewhere (it is no longer planned here): following the job for
    # a alone would map its outputs by the wrong positions.
    plan = sort_out([left("jb_1", a, b)], [planned(a, c)])
    assert plan.follow == [] and plan.stop == ["jb_1"]
    assert [job.run_ids for job in plan.pending] == [[a.id, c.id]]


def test_jobs_whose_runs_ended_or_moved_are_stopped_the_others_followed() -> None:
    a, b, c, d, e, f = RUNS
    plan = sort_out(
        [left("jb_1", a, b), left("jb_2", c, d), left("jb_3", e)],
        [planned(c, d), planned(f)],
    )
    assert [job.job_id for job in plan.follow] == ["jb_2"]
    assert plan.stop == ["jb_1", "jb_3"]
    assert [job.run_ids for job in plan.pending] == [[f.id]]


def test_nothing_left_leaves_the_plan_as_it_is() -> None:
    jobs = [planned(*RUNS[:2]), planned(RUNS[2])]
    plan = sort_out([], jobs)
    assert plan.follow == [] and plan.stop == [] and plan.pending == jobs


def test_of_two_jobs_left_with_the_same_runs_one_is_followed_and_the_other_stopped() -> None:
    # A job given back, planned again onto the same host, and given back again:
    # following both would run (and adopt) its runs twice.
    a, b, c = RUNS[:3]
    plan = sort_out([left("jb_1", a, b), left("jb_2", b, a), left("jb_3", c)], [planned(a, b, c)])
    followed = [job.job_id for job in plan.follow]
    assert len({"jb_1", "jb_2"} & set(followed)) == 1 and "jb_3" in followed
    assert sorted(plan.stop + followed) == ["jb_1", "jb_2", "jb_3"]
    assert plan.pending == []
