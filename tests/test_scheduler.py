"""The scheduler's policy: which runs share a job, and where and when jobs run.

Plans are checked as a user would judge them: every run exactly once, no
GPU given twice at a time, a job's GPUs on one host, runs with different
parameters never in one job, and a makespan near what any schedule could do.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_identity_and_expansion import BATCH_SHARED, VIDEO, make_run, random_runs, with_model

from cosmos_workflow.config.settings import SimulatorSettings, Transfer1Settings
from cosmos_workflow.engine.scheduler import (
    Booking,
    CostModel,
    HostSlots,
    form_jobs,
    lower_bound,
    makespan,
    plan,
    split_for_balance,
    start_now,
)
from cosmos_workflow.execution.adapters.simulated import SimulatedAdapter
from cosmos_workflow.execution.adapters.transfer1 import Transfer1Adapter
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, RunSpec

CONTROL_FILES = {
    name: InputFile(Path(f"/data/{name}.mp4"), letter * 64)
    for name, letter in (("depth", "b"), ("edge", "c"), ("vis", "d"), ("seg", "e"))
}


def adapters(load_s: float = 3.0, per_video_s: float = 1.0, batch: int = 8) -> dict[str, Any]:
    simulated = SimulatedAdapter(
        SimulatorSettings(model_load_s=load_s, per_video_s=per_video_s), max_batch_size=batch
    )
    return {"simulated": simulated, "transfer1": Transfer1Adapter(Transfer1Settings())}


def run_with(controls: tuple[str, ...], num_gpus: int, index: int) -> RunSpec:
    weights = {
        name: (0.5 if name in controls else None) for name in ("vis", "edge", "depth", "seg")
    }
    model = with_model(num_gpus=num_gpus, **weights)
    inputs = PromptInputSet(video=VIDEO, controls={c: CONTROL_FILES[c] for c in controls})
    return make_run(model, text=f"scene {index}", inputs=inputs)


def benchmark_workload(rng: random.Random, count: int = 64) -> list[RunSpec]:
    """Mixed control sets and GPU counts, as benchmarks/scheduling.py runs them."""
    sets = [("depth",), ("edge",), ("depth", "edge"), ("vis",)]
    return [run_with(rng.choice(sets), rng.choice([1, 2]), index) for index in range(count)]


def pool(*specs: tuple[int, float]) -> list[HostSlots]:
    hosts, first = [], 0
    for number, (gpus, speed) in enumerate(specs):
        hosts.append(HostSlots(f"h{number}", list(range(first, first + gpus)), speed))
        first += gpus
    return hosts


def assert_valid(bookings: list[Booking], runs: list[RunSpec], hosts: list[HostSlots]) -> None:
    """Every run once; a job's GPUs on one host, as many as it needs; no GPU used twice at once."""
    booked = Counter(run.id for booking in bookings for run in booking.job.runs)
    assert booked == Counter(run.id for run in runs)
    by_name = {host.name: host for host in hosts}
    for booking in bookings:
        assert len(booking.gpus) == booking.job.num_gpus
        assert set(booking.gpus) <= set(by_name[booking.host].gpus)
        assert booking.finish > booking.start >= 0
    for first in bookings:
        for second in bookings:
            if first is second or first.host != second.host:
                continue
            if set(first.gpus) & set(second.gpus):
                overlap = min(first.finish, second.finish) - max(first.start, second.start)
                assert overlap <= 1e-9, "one GPU was given to two jobs at once"


# -- which runs share a job ---------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_jobs_never_merge_runs_whose_parameters_differ(seed: int) -> None:
    rng = random.Random(seed)
    runs = random_runs(rng, 120)
    jobs = form_jobs(runs, adapters(batch=4))
    assert Counter(r.id for job in jobs for r in job.runs) == Counter(r.id for r in runs)
    assert any(len(job.runs) > 1 for job in jobs), "nothing was batched at all"
    for job in jobs:
        assert 1 <= len(job.runs) <= 4
        first = job.runs[0]
        assert job.num_gpus == first.model["num_gpus"]
        for run in job.runs[1:]:
            for key in BATCH_SHARED:
                assert run.model[key] == first.model[key], key
            assert run.prompt.negative == first.prompt.negative
            assert set(run.prompt.inputs.controls) == set(first.prompt.inputs.controls)


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 2},
        {"guidance": 7.0},
        {"num_steps": 10},
        {"sigma_max": 80.0},
        {"fps": 30},
        {"num_gpus": 2},
        {"depth": 0.8},
        {"blur_strength": "high"},
        {"canny_threshold": "low"},
        {"adapter": "transfer1"},
    ],
)
def test_one_differing_parameter_keeps_two_runs_apart(change: dict[str, Any]) -> None:
    same = [make_run(text="a"), make_run(text="b")]
    assert len(form_jobs(same, adapters())) == 1, "precondition: they share a job"
    other = [make_run(text="a"), make_run(with_model(**change), text="b")]
    assert [len(job.runs) for job in form_jobs(other, adapters())] == [1, 1]


def test_another_control_set_keeps_two_runs_apart() -> None:
    runs = [run_with(("depth",), 1, 1), run_with(("depth", "edge"), 1, 1)]
    assert len(form_jobs(runs, adapters())) == 2


def test_without_batching_every_run_is_its_own_job() -> None:
    runs = [make_run(text=f"p{i}") for i in range(5)]
    assert [len(job.runs) for job in form_jobs(runs, adapters(), batching=False)] == [1] * 5
    assert len(form_jobs(runs, adapters(), batching=True)) == 1


@pytest.mark.parametrize(
    ("count", "most", "sizes"), [(9, 8, [5, 4]), (16, 8, [8, 8]), (3, 1, [1] * 3)]
)
def test_a_group_is_cut_into_the_fewest_even_jobs(count: int, most: int, sizes: list[int]) -> None:
    runs = [make_run(text=f"p{i}") for i in range(count)]
    jobs = form_jobs(runs, adapters(batch=most))
    assert sorted((len(job.runs) for job in jobs), reverse=True) == sizes


# -- where and when jobs run ----------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("speeds", [(1.0, 1.0), (1.0, 0.5), (2.0, 0.7)])
def test_the_benchmark_workload_is_packed_near_the_lower_bound(
    seed: int, speeds: tuple[float, float]
) -> None:
    runs = benchmark_workload(random.Random(seed))
    hosts = pool((2, speeds[0]), (2, speeds[1]))
    models = adapters(load_s=3.0, per_video_s=1.0)
    cost = CostModel(models)
    jobs = split_for_balance(form_jobs(runs, models), hosts, cost)
    bookings = plan(jobs, hosts, cost, 0.0)
    assert_valid(bookings, runs, hosts)
    bound = lower_bound(runs, models, hosts)
    assert makespan(bookings) <= 1.15 * bound, (makespan(bookings), bound)


@pytest.mark.parametrize("seed", range(4))
def test_random_workloads_give_valid_plans_on_uneven_pools(seed: int) -> None:
    rng = random.Random(seed)
    runs = random_runs(rng, 60)
    hosts = pool((rng.choice([2, 3, 4]), rng.uniform(0.3, 2)), (rng.choice([1, 2]), 1.0))
    models = adapters(load_s=rng.uniform(0, 5), per_video_s=rng.uniform(0.1, 2))
    cost = CostModel(models)
    jobs = split_for_balance(form_jobs(runs, models), hosts, cost)
    assert_valid(plan(jobs, hosts, cost, 0.0), runs, hosts)


def test_a_faster_host_gets_more_work_and_the_sweep_ends_sooner() -> None:
    runs = [make_run(text=f"p{i}") for i in range(32)]
    models = adapters(load_s=1.0, per_video_s=1.0, batch=2)
    cost = CostModel(models)
    jobs = form_jobs(runs, models)
    uneven = pool((1, 3.0), (1, 1.0))
    bookings = plan(jobs, uneven, cost, 0.0)
    per_host = Counter(booking.host for booking in bookings for _ in booking.job.runs)
    assert per_host["h0"] > 2 * per_host["h1"]
    # Splitting the runs evenly would leave the fast host idle half the time.
    half = len(jobs) // 2
    even_split = max(
        sum(cost.seconds(job, 3.0) for job in jobs[:half]),
        sum(cost.seconds(job, 1.0) for job in jobs[half:]),
    )
    assert makespan(bookings) < 0.7 * even_split


def test_a_drained_host_gets_no_job() -> None:
    runs = [make_run(text=f"p{i}") for i in range(12)]
    models = adapters(batch=2)
    hosts = pool((2, 1.0), (2, 1.0))
    hosts[1].up = False
    bookings = plan(form_jobs(runs, models), hosts, CostModel(models), 0.0)
    assert {booking.host for booking in bookings} == {"h0"}
    assert_valid(bookings, runs, hosts)


def test_a_job_that_needs_more_gpus_than_a_host_has_goes_to_one_that_has_them() -> None:
    runs = [run_with(("depth",), 3, i) for i in range(4)]
    models = adapters(batch=1)
    hosts = pool((2, 5.0), (4, 1.0))
    bookings = plan(form_jobs(runs, models), hosts, CostModel(models), 0.0)
    assert {booking.host for booking in bookings} == {"h1"}
    assert_valid(bookings, runs, hosts)


def test_only_jobs_on_free_gpus_start_now() -> None:
    runs = [make_run(text=f"p{i}") for i in range(8)]
    models = adapters(batch=1)
    hosts = pool((4, 1.0))
    hosts[0].occupy([0, 1, 2], until=100.0)
    started = start_now(form_jobs(runs, models), hosts, CostModel(models), 0.0)
    assert [booking.gpus for booking in started] == [(3,)]


def test_a_job_in_backoff_does_not_start_before_its_time() -> None:
    models = adapters(batch=8)
    jobs = form_jobs([make_run(text="a")], models)
    jobs[0].not_before = 10.0
    hosts = pool((1, 1.0))
    assert start_now(jobs, hosts, CostModel(models), 0.0) == []
    assert len(start_now(jobs, hosts, CostModel(models), 10.0)) == 1


def test_one_large_group_is_cut_when_gpus_would_stay_idle() -> None:
    runs = [make_run(text=f"p{i}") for i in range(8)]
    models = adapters(load_s=3.0, per_video_s=1.0, batch=8)
    cost = CostModel(models)
    hosts = pool((4, 1.0))
    whole = form_jobs(runs, models)
    assert len(whole) == 1
    cut = split_for_balance(whole, hosts, cost)
    assert len(cut) > 1
    assert makespan(plan(cut, hosts, cost, 0.0)) < makespan(plan(whole, hosts, cost, 0.0))
    assert Counter(r.id for job in cut for r in job.runs) == Counter(r.id for r in runs)


def test_balanced_jobs_are_not_cut() -> None:
    runs = [run_with(("depth",), 1, i) for i in range(16)]
    models = adapters(load_s=3.0, per_video_s=1.0, batch=4)
    cost = CostModel(models)
    hosts = pool((4, 1.0))
    jobs = form_jobs(runs, models)
    assert len(split_for_balance(jobs, hosts, cost)) == 4


@pytest.mark.parametrize(("took", "expected"), [(2.0, 0.5), (0.5, 2.0)])
def test_a_host_speed_is_learnt_from_finished_jobs(took: float, expected: float) -> None:
    host = HostSlots("h", [0], speed=1.0)
    for _ in range(12):
        host.learn(expected_s=10.0, actual_s=10.0 * took)
    assert host.speed == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(
    ("count", "most", "gpus"), [(16, 8, 4), (16, 8, 8), (24, 8, 4), (40, 8, 4)]
)
def test_cuts_reach_the_best_even_split_of_a_group(count: int, most: int, gpus: int) -> None:
    """Equal jobs that end together are cut until no even split of the group does better."""
    runs = [make_run(text=f"p{i}") for i in range(count)]
    models = adapters(load_s=3.0, per_video_s=1.0, batch=most)
    cost = CostModel(models)
    hosts = pool((gpus, 1.0))
    chosen = makespan(plan(split_for_balance(form_jobs(runs, models), hosts, cost), hosts, cost, 0))
    best = min(
        makespan(plan(form_jobs(runs, adapters(3.0, 1.0, batch=size)), hosts, cost, 0))
        for size in range(1, most + 1)
    )
    assert chosen <= best + 1e-9, (chosen, best)


def test_a_gpu_whose_job_overran_its_estimate_is_not_given_another_job() -> None:
    models = adapters(batch=1)
    hosts = pool((2, 1.0))
    hosts[0].occupy([0], until=-5.0)  # its job should have ended 5 s ago
    jobs = form_jobs([make_run(text=f"p{i}") for i in range(3)], models)
    started = start_now(jobs, hosts, CostModel(models), 0.0)
    assert [booking.gpus for booking in started] == [(1,)]


def test_an_idle_slow_host_takes_a_job_rather_than_wait_long_for_a_busy_fast_one() -> None:
    models = adapters(load_s=3.0, per_video_s=1.0, batch=8)
    hosts = pool((1, 2.0), (1, 1.0))
    hosts[0].occupy([0], until=100.0)
    jobs = form_jobs([make_run(text="a")], models)
    started = start_now(jobs, hosts, CostModel(models), 0.0)
    assert [(booking.host, booking.gpus) for booking in started] == [("h1", (1,))]


def test_the_lower_bound_is_the_least_work_spread_over_every_gpu() -> None:
    runs = [make_run(text=f"p{i}") for i in range(8)]
    models = adapters(load_s=3.0, per_video_s=1.0, batch=8)
    load, video = models["simulated"].time_estimates()
    assert lower_bound(runs, models, pool((4, 1.0))) == pytest.approx(
        max((load + 8 * video) / 4, load + video)
    )
    assert lower_bound(runs, models, pool((2, 1.0), (2, 3.0))) == pytest.approx(
        max((load + 8 * video) / 8, (load + video) / 3)
    )


def test_a_jobs_estimate_is_one_load_and_its_videos_at_the_hosts_speed() -> None:
    models = adapters(load_s=3.0, per_video_s=1.0, batch=8)
    load, video = models["simulated"].time_estimates()
    job = form_jobs([make_run(text=f"p{i}") for i in range(4)], models)[0]
    assert CostModel(models).seconds(job, speed=2.0) == pytest.approx((load + 4 * video) / 2)
    assert CostModel(models).gpu_seconds(job) == pytest.approx(load + 4 * video)


def test_jobs_keep_their_runs_in_id_order() -> None:
    runs = random_runs(random.Random(3), 40)
    for job in form_jobs(runs, adapters(batch=4)):
        assert job.run_ids == sorted(job.run_ids)


def test_one_slow_job_moves_a_learnt_speed_only_part_way() -> None:
    host = HostSlots("h", [0], speed=1.0)
    host.learn(expected_s=10.0, actual_s=100.0)
    assert 0.1 < host.speed < 0.9
