"""A host that answers again: which jobs left there are followed again (engine/comeback.py).

The end-to-end cases (a cut link with one and two targets) are in
tests/test_outages.py; these are the boundaries of the rule itself.
"""

from __future__ import annotations

from types import SimpleNamespace

from test_identity_and_expansion import make_run

from cosmos_workflow.engine.comeback import LeftJob, adoptable, sort_out
from cosmos_workflow.engine.scheduler import PlannedJob
from cosmos_workflow.execution.targets.base import Leftover
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


class Recorded:
    """What adoptable() reads of the database: each job's recorded run order, each run's GPUs."""

    def __init__(self, orders: dict[str, list[str]], gpus: str = "1") -> None:
        self.orders, self.gpus = orders, gpus

    def job_run_order(self, job_id: str) -> list[str]:
        return list(self.orders.get(job_id, []))

    def get_run(self, run_id: str) -> SimpleNamespace:
        return SimpleNamespace(id=run_id, gpus=self.gpus)


def container(job_id: str, *runs: RunSpec) -> list[Leftover]:
    name = f"cosmos-{job_id}"
    return [
        Leftover(job_id, "container", name, runs=tuple(run.id for run in runs)),
        Leftover(job_id, "job folder", f"/work/jobs/{job_id}"),
    ]


def test_a_container_left_by_a_runner_that_quit_is_adopted_only_if_all_its_runs_wait() -> None:
    a, b, c = RUNS[:3]
    plan = [planned(a, b, c)]
    # Its runs all wait: followed, in the recorded order, on its GPUs.
    adopted = adoptable(Recorded({"jb_1": [b.id, a.id]}), plan, "jb_1", container("jb_1", a, b))
    assert adopted == LeftJob("jb_1", (b.id, a.id), (1,), tries=0)
    # Not recorded any more: the order of every job's runs (their ids).
    again = adoptable(Recorded({}), plan, "jb_1", container("jb_1", b, a))
    assert again is not None and again.run_ids == tuple(sorted((a.id, b.id)))
    # One of its runs went elsewhere (or ended): following it would map outputs wrongly.
    assert adoptable(Recorded({}), [planned(a, c)], "jb_1", container("jb_1", a, b)) is None
    # The database says the job had other runs than its label names.
    recorded = Recorded({"jb_1": [a.id, b.id, c.id]})
    assert adoptable(recorded, plan, "jb_1", container("jb_1", a, b)) is None
    # A job folder alone, or a container that names no run: nothing to follow.
    assert adoptable(Recorded({}), plan, "jb_1", container("jb_1", a, b)[1:]) is None
    assert adoptable(Recorded({}), plan, "jb_1", container("jb_1")) is None
