"""`cosmos-batch -m ...`: every Hydra job's runs go to the scheduler as ONE sweep.

The launcher plugin (hydra_plugins/cosmos_workflow_launcher) plans every
job through Hydra's job machinery, then executes the union of their runs.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import Project, make_project
from test_demo_sweep import plan_ids, plan_states
from test_logs_kill_status import db_rows, running_job

# The example: 3 seeds x 2 depth weights = 6 jobs of 2 runs (street, forest).
SEEDS = ("1", "2", "3")
DEPTHS = ("0.2", "0.5")
GRID = (
    "+experiment=demo",
    f"model.seed={','.join(SEEDS)}",
    f"model.weights.depth={','.join(DEPTHS)}",
)
JOB_OVERRIDES = [
    ["+experiment=demo", f"model.seed={seed}", f"model.weights.depth={depth}"]
    for seed, depth in itertools.product(SEEDS, DEPTHS)
]


def sweep_lines(stdout: str) -> list[str]:
    """The summary (or plan) line of each sweep: 'sweep sw_... (name): ...'."""
    return [line for line in stdout.splitlines() if line.startswith("sweep sw_")]


def ledger_jobs(project: Project) -> Counter[str]:
    """How many videos the simulated model produced in each job (jb_ id)."""
    return Counter(
        next(part for part in Path(line["output"]).parts if part.startswith("jb_"))
        for line in project.ledger_lines()
    )


def assert_each_run_executed_once(project: Project, runs: list[dict]) -> None:
    """Every run produced exactly one video, in the job it is recorded with."""
    assert ledger_jobs(project) == Counter(run["job_id"] for run in runs)


def multirun_record(folder: Path) -> dict:
    return yaml.safe_load((folder / "cosmos_sweep.yaml").read_text())


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, subprocess.CompletedProcess]:
    """A project on which the 6-job grid ran once, with its Hydra sweep folder at multi/."""
    proj = make_project(tmp_path_factory.mktemp("grid") / "proj")
    done = proj.batch("-m", *GRID, "hydra.sweep.dir=multi")
    assert done.returncode == 0, done.stderr
    return proj, done


# ---------------------------------------------------------------- one sweep


def test_a_grid_is_one_sweep_holding_the_union_of_every_jobs_runs(grid) -> None:
    project, done = grid
    [sweep] = project.cosmos_json("list", "sweeps")
    assert sweep["runs"] == 12 and sweep["counts"]["succeeded"] == 12
    [line] = sweep_lines(done.stdout)
    assert line.startswith(f"sweep {sweep['id']} (demo): 12 runs: 12 executed (12 succeeded")
    assert "multirun: 6 jobs, 1 sweep" in done.stdout

    runs = project.cosmos_json("list", "runs")
    assert len(runs) == 12
    assert_each_run_executed_once(project, runs)
    # Each job's values reached the model: every (seed, depth) pair, for both prompts.
    seen = set()
    for run in runs:
        effective = json.loads((Path(run["output_dir"]) / "spec.json").read_text())
        seen.add((str(effective["seed"]), str(effective["depth"]["control_weight"])))
    assert seen == set(itertools.product(SEEDS, DEPTHS))


def test_each_job_keeps_its_hydra_files(grid) -> None:
    project, _ = grid
    multi = project.root / "multi"
    assert (multi / "multirun.yaml").is_file()
    for num, overrides in enumerate(JOB_OVERRIDES):
        hydra_dir = multi / str(num) / ".hydra"
        assert yaml.safe_load((hydra_dir / "overrides.yaml").read_text()) == overrides
        config = yaml.safe_load((hydra_dir / "config.yaml").read_text())
        assert str(config["model"]["seed"]) == overrides[1].split("=")[1]
        assert str(config["model"]["weights"]["depth"]) == overrides[2].split("=")[1]
        hydra_cfg = yaml.safe_load((hydra_dir / "hydra.yaml").read_text())["hydra"]
        assert hydra_cfg["job"]["num"] == num
        assert hydra_cfg["launcher"]["_target_"].endswith("CosmosLauncher")


def test_the_sweep_folders_record_every_jobs_overrides(grid) -> None:
    project, done = grid
    [sweep] = project.cosmos_json("list", "sweeps")
    assert f"hydra: {project.root / 'multi' / 'cosmos_sweep.yaml'}" in done.stdout
    record = multirun_record(project.root / "multi")
    [entry] = record["sweeps"]
    assert entry["id"] == sweep["id"] and entry["name"] == "demo"
    assert Path(entry["outputs"]) == project.outputs / "sweeps" / sweep["id"]
    assert [job["num"] for job in entry["jobs"]] == list(range(6))
    assert [job["overrides"] for job in entry["jobs"]] == JOB_OVERRIDES
    by_job = [job["runs"] for job in entry["jobs"]]
    assert all(len(ids) == 2 for ids in by_job)
    assert sorted(itertools.chain(*by_job)) == sorted(
        r["id"] for r in project.cosmos_json("list", "runs")
    )

    folder = Path(sweep["output_dir"])
    assert yaml.safe_load((folder / "overrides.yaml").read_text()) == JOB_OVERRIDES
    text = (folder / "manifest.yaml").read_text()
    assert text.startswith("# A multirun's sweep") and "@package" not in text
    assert "&id" not in text, "YAML aliases: the file shares objects between its parts"
    manifest = yaml.safe_load(text)
    assert manifest["name"] == "demo"
    assert [job["overrides"] for job in manifest["jobs"]] == JOB_OVERRIDES
    for job, overrides in zip(manifest["jobs"], JOB_OVERRIDES, strict=True):
        resolved = job["manifest"]
        assert resolved["name"] == "demo" and set(resolved["prompts"]) == {"street", "forest"}
        assert str(resolved["model"]["seed"]) == overrides[1].split("=")[1]
        assert "model.seed" not in resolved["sweep"]["grid"]
    # Parameters all jobs share are the sweep's model (as in provenance.json).
    assert manifest["model"]["adapter"] == "simulated" and "seed" not in manifest["model"]
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["model"]["adapter"] == "simulated"

    rows = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    shown = project.cosmos_json("show", sweep["id"])
    assert shown["overrides"] == JOB_OVERRIDES and len(shown["runs"]) == 12
    for row in rows + shown["runs"]:
        params = row["params"]
        assert params["prompt"] in {"street", "forest"}
        assert params["overrides"] in JOB_OVERRIDES
        spec = yaml.safe_load((project.outputs / "runs" / row["id"] / "run.yaml").read_text())
        assert f"model.seed={spec['model']['seed']}" in params["overrides"]


def test_running_the_same_multirun_again_executes_nothing(grid) -> None:
    project, _ = grid
    [before] = project.cosmos_json("list", "sweeps")
    executed = len(project.ledger_lines())
    again = project.batch("-m", *GRID, "hydra.sweep.dir=multi_again")
    assert again.returncode == 0, again.stderr
    [line] = sweep_lines(again.stdout)
    assert (
        line
        == f"sweep {before['id']} (demo): 12 runs: 0 executed (0 succeeded, 0 failed), 12 cached"
    )
    assert len(project.ledger_lines()) == executed
    assert project.cosmos_json("list", "sweeps") == [before]
    assert multirun_record(project.root / "multi_again")["sweeps"][0]["id"] == before["id"]


def test_a_dry_run_prints_the_union_plan_and_executes_nothing(project: Project, grid) -> None:
    done = project.batch("-m", *GRID, "dry_run=true", "hydra.sweep.dir=multi")
    assert done.returncode == 0, done.stderr
    [line] = sweep_lines(done.stdout)
    assert line.endswith("(demo): 12 runs, 0 cached, 12 to run")
    ids = plan_ids(done.stdout)
    assert len(ids) == 12 and len(set(ids)) == 12
    assert set(plan_states(done.stdout).values()) == {"to run"}
    assert "dry run: nothing was executed" in done.stdout
    assert project.ledger_lines() == []
    assert not (project.outputs / "cosmos.db").exists()
    assert not (project.outputs / "sweeps").exists()
    assert not (project.root / "multi" / "cosmos_sweep.yaml").exists()
    # The plan is what runs: same ids as executing it (the same command ran in `grid`,
    # in another folder: ids do not depend on it).
    executed, _ = grid
    runs = executed.cosmos_json("list", "runs")
    assert sorted(r["id"] for r in runs) == sorted(ids)
    assert_each_run_executed_once(executed, runs)
    [sweep] = executed.cosmos_json("list", "sweeps")
    assert line.startswith(f"sweep {sweep['id']} ")


def test_one_job_or_jobs_that_give_the_same_runs_are_the_single_sweep(project: Project) -> None:
    single = project.batch("+experiment=demo", "dry_run=true")
    [single_line] = sweep_lines(single.stdout)
    one_job = project.batch("-m", "+experiment=demo", "dry_run=true")
    assert one_job.returncode == 0, one_job.stderr
    assert sweep_lines(one_job.stdout) == [single_line]
    # The description changes no run: two jobs, the same 12 runs, listed once.
    twins = project.batch("-m", "+experiment=demo", "description=a,b", "dry_run=true")
    assert twins.returncode == 0, twins.stderr
    [line] = sweep_lines(twins.stdout)
    assert line.split()[1] == single_line.split()[1], "the sweep id is not content-based"
    assert plan_ids(twins.stdout) == plan_ids(single.stdout)
    assert "12 sweep point(s) gave an already listed run and were merged" in twins.stdout


def subset_experiment(name: str) -> str:
    """An experiment whose 4 runs are also demo runs (seeds 1 and 2 at depth 0.5)."""
    return (
        "# @package _global_\n"
        "defaults:\n  - /prompts: demo\n"
        f"name: {name}\nvars: {{style: golden-hour}}\n"
        "model: {weights: {depth: 0.5}}\n"
        "sweep: {grid: {model.seed: [1, 2]}}\n"
    )


def test_jobs_of_different_experiments_are_one_sweep_named_after_them(project: Project) -> None:
    project.write("manifests/experiment/subset.yaml", subset_experiment("subset"))
    done = project.batch("-m", "+experiment=demo,subset", "dry_run=true")
    assert done.returncode == 0, done.stderr
    [line] = sweep_lines(done.stdout)
    assert "(demo+subset): 12 runs, 0 cached, 12 to run" in line
    assert "4 sweep point(s) gave an already listed run and were merged" in done.stdout
    single = project.batch("+experiment=demo", "dry_run=true")
    assert plan_ids(done.stdout) == plan_ids(single.stdout)

    # Names too long for the database together: the first name and a count.
    names = [f"{letter * 90}" for letter in "xyz"]
    for name in names:
        project.write(f"manifests/experiment/{name[0]}.yaml", subset_experiment(name))
    many = project.batch("-m", "+experiment=x,y,z", "dry_run=true")
    assert many.returncode == 0, many.stderr
    [line] = sweep_lines(many.stdout)
    assert f"({names[0]}+2-more): 4 runs" in line


def test_compatible_runs_of_different_jobs_share_one_model_invocation(project: Project) -> None:
    # 2 jobs (two lighting styles) x 2 prompts x 2 seeds, one depth: the runs of
    # one seed may share an invocation, 2 per job, 4 across both jobs.
    done = project.batch(
        "-m", "+experiment=demo", "model.weights.depth=0.5", "vars.style=golden-hour,blue-hour"
    )
    assert done.returncode == 0, done.stderr
    assert "8 executed (8 succeeded, 0 failed), 0 cached" in done.stdout
    runs = project.cosmos_json("list", "runs")
    assert len(runs) == 8
    assert_each_run_executed_once(project, runs)
    styles_by_job: dict[str, set[str]] = {}
    for run in runs:
        folder = Path(run["output_dir"])
        result = json.loads((folder / "result.json").read_text())
        assert result["batch_size"] == 4, result
        text = yaml.safe_load((folder / "run.yaml").read_text())["prompt"]["text"]
        style = "golden-hour" if "golden-hour" in text else "blue-hour"
        styles_by_job.setdefault(run["job_id"], set()).add(style)
    assert len(styles_by_job) == 2
    assert all(styles == {"golden-hour", "blue-hour"} for styles in styles_by_job.values())


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("overrides", "bad_jobs", "named"),
    [
        (("+experiment=demo", "model.seed=1,-1"), [1], "model.seed=-1"),
        (("+experiment=demo", "simulator.per_video_s=0,-5"), [1], "simulator.per_video_s=-5"),
        (("+experiment=demo", "model.weights.depth=0.5,-1", "model.seed=3,4"), [2, 3], "depth"),
    ],
    ids=["manifest", "settings", "two-bad-jobs-of-four"],
)
def test_an_invalid_job_stops_the_multirun_before_anything_runs(
    project: Project, overrides: tuple[str, ...], bad_jobs: list[int], named: str
) -> None:
    done = project.batch("-m", *overrides, "hydra.sweep.dir=multi")
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error (validation)")]
    assert [int(re.search(r": job (\d+) \(", line)[1]) for line in errors] == bad_jobs
    assert all(named in line for line in errors), errors
    assert f"{len(bad_jobs)} of " in done.stderr and "nothing was executed" in done.stderr
    assert "Traceback" not in done.stderr
    assert project.ledger_lines() == []
    assert not (project.outputs / "cosmos.db").exists()
    assert not (project.outputs / "sweeps").exists()
    assert not (project.outputs / "runs").exists()


def test_a_job_that_hydra_cannot_compose_exits_2(project: Project) -> None:
    done = project.batch("-m", "+experiment=demo,no_such_experiment")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no_such_experiment" in done.stderr
    assert project.ledger_lines() == []
    assert not (project.outputs / "cosmos.db").exists()


# ---------------------------------------------------------------- settings


def test_jobs_with_other_settings_run_as_separate_sweeps(project: Project) -> None:
    done = project.batch(
        "-m",
        "+experiment=demo",
        "model.weights.depth=0.5",
        "paths.outputs=out_a,out_b",
        "model.seed=1,2",
        "hydra.sweep.dir=multi",
    )
    assert done.returncode == 0, done.stderr
    assert "note: the jobs have 2 different settings" in done.stdout
    lines = sweep_lines(done.stdout)
    assert len(lines) == 2
    assert all("4 runs: 4 executed (4 succeeded, 0 failed), 0 cached" in line for line in lines)
    record = multirun_record(project.root / "multi")["sweeps"]
    assert [[job["num"] for job in entry["jobs"]] for entry in record] == [[0, 1], [2, 3]]
    assert len(project.ledger_lines()) == 8
    run_ids = set()
    for folder, entry in zip(("out_a", "out_b"), record, strict=True):
        outputs = project.root / folder
        assert Path(entry["outputs"]).parent == outputs / "sweeps"
        env = {"COSMOS_PATHS__OUTPUTS": str(outputs)}
        listed = project.cosmos("list", "sweeps", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        [sweep] = json.loads(listed.stdout)
        assert sweep["id"] == entry["id"]
        assert sweep["runs"] == 4 and sweep["counts"]["succeeded"] == 4
        listed = project.cosmos("list", "runs", "--json", env=env)
        runs = json.loads(listed.stdout)
        assert len(runs) == 4 and {r["status"] for r in runs} == {"succeeded"}
        assert {p.name for p in (outputs / "runs").iterdir()} == {r["id"] for r in runs}
        run_ids.update(r["id"] for r in runs)
        jobs_here = ledger_jobs(project)
        assert all(jobs_here[run["job_id"]] == 2 for run in runs)
    # Both trees hold the same 4 runs (the outputs path is not part of a run id).
    assert len(run_ids) == 4


def test_settings_that_validate_equal_share_one_sweep(project: Project) -> None:
    done = project.batch("-m", "+experiment=demo", "model.seed=1,2", "simulator.per_video_s=0,0.0")
    assert done.returncode == 0, done.stderr
    assert "different settings" not in done.stdout
    assert "multirun: 4 jobs, 1 sweep" in done.stdout
    [line] = sweep_lines(done.stdout)
    assert "12 runs: 12 executed (12 succeeded, 0 failed), 0 cached" in line
    assert "12 sweep point(s) gave an already listed run and were merged" in done.stdout
    assert len(project.ledger_lines()) == 12
    assert len(project.cosmos_json("list", "sweeps")) == 1


# ---------------------------------------------------------------- kill, show, resume


def test_kill_sweep_stops_a_multirun_and_the_same_command_resumes_it(project: Project) -> None:
    args = ("-m", "+experiment=demo", "model.weights.depth=0.5", "model.seed=1,2")
    runner = project.start_batch(*args, env={"COSMOS_SIMULATOR__PER_VIDEO_S": "5"}, capture=True)
    job_id, _ = running_job(project)
    [(sweep_id,)] = db_rows(project, "SELECT id FROM sweeps")
    killed = project.cosmos("kill", "--sweep", sweep_id, "--json")
    assert killed.returncode == 0, killed.stderr
    report = json.loads(killed.stdout)
    assert len(report["cancelled"]) == 4
    assert [job["job_id"] for job in report["jobs"]] == [job_id]
    stdout, stderr = runner.communicate(timeout=120)
    assert runner.returncode == 1, stderr
    assert "0 executed (0 succeeded, 0 failed), 0 cached, 4 cancelled" in stdout
    shown = project.cosmos_json("show", sweep_id)
    assert shown["counts"]["cancelled"] == 4
    assert sorted(run["id"] for run in shown["runs"]) == sorted(report["cancelled"])
    jobs = [["+experiment=demo", "model.weights.depth=0.5", f"model.seed={n}"] for n in (1, 2)]
    assert sorted(run["params"]["overrides"] for run in shown["runs"]) == sorted(jobs * 2)

    resumed = project.batch(*args)
    assert resumed.returncode == 0, resumed.stderr
    [line] = sweep_lines(resumed.stdout)
    assert line == f"sweep {sweep_id} (demo): 4 runs: 4 executed (4 succeeded, 0 failed), 0 cached"
    again = project.batch(*args)
    assert "0 executed (0 succeeded, 0 failed), 4 cached" in again.stdout
    assert project.cosmos_json("show", sweep_id)["counts"]["succeeded"] == 4
    assert len(project.cosmos_json("list", "sweeps")) == 1


def test_ctrl_c_while_jobs_are_planned_stops_before_anything_runs(project: Project) -> None:
    seeds = ",".join(str(seed) for seed in range(40))
    process = project.start_batch(
        "-m", "+experiment=demo", f"model.seed={seeds}", "hydra.sweep.dir=multi", capture=True
    )
    deadline = time.monotonic() + 120
    while not (project.root / "multi" / "1" / ".hydra").is_dir():
        assert time.monotonic() < deadline, "planning never started"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    assert "interrupted: nothing was executed" in stderr and "Traceback" not in stderr
    assert len(list((project.root / "multi").glob("*/.hydra"))) < 40, "planning went on"
    assert project.ledger_lines() == []
    assert not (project.outputs / "cosmos.db").exists()


def test_ctrl_c_while_the_union_runs_cancels_it_and_the_same_command_finishes(
    project: Project,
) -> None:
    args = ("-m", "+experiment=demo", "model.seed=1,2")
    process = project.start_batch(*args, env={"COSMOS_SIMULATOR__PER_VIDEO_S": "0.4"}, capture=True)
    project.wait_for_ledger(2)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted: unfinished runs were marked cancelled" in stderr
    [sweep] = project.cosmos_json("list", "sweeps")
    assert sweep["runs"] == 12 and sweep["counts"]["cancelled"] > 0
    done = project.batch(*args)
    assert done.returncode == 0, done.stderr
    [line] = sweep_lines(done.stdout)
    assert line.startswith(f"sweep {sweep['id']} (demo): 12 runs: ")
    assert project.cosmos_json("show", sweep["id"])["counts"]["succeeded"] == 12


# ---------------------------------------------------------------- the plugin


def test_the_plugin_is_cosmos_batchs_default_launcher(project: Project) -> None:
    shown = project.batch("+experiment=demo", "--cfg", "hydra")
    assert shown.returncode == 0, shown.stderr
    launcher = yaml.safe_load(shown.stdout)["hydra"]["launcher"]
    assert launcher["_target_"] == "hydra_plugins.cosmos_workflow_launcher.launcher.CosmosLauncher"
    # A single run still writes no Hydra output folder.
    assert project.batch("+experiment=demo", "dry_run=true").returncode == 0
    assert not list(project.root.rglob(".hydra"))


PLAIN_APP = """
import sys
import time
from pathlib import Path

import hydra


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg):
    with Path("order.txt").open("a") as handle:
        handle.write(f"{cfg.x}\\n")
    if cfg.x == "boom":
        raise ValueError("boom")


main()
"""


def test_another_hydra_app_gets_the_basic_launchers_behaviour(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text(
        "defaults:\n  - override hydra/launcher: cosmos\n  - _self_\nx: a\n"
    )
    (tmp_path / "app.py").write_text(PLAIN_APP)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "app.py", "-m", *args, "hydra.sweep.dir=multi"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = run("x=c,a,b")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "order.txt").read_text() == "c\na\nb\n"
    for num, value in enumerate("cab"):
        overrides = tmp_path / "multi" / str(num) / ".hydra" / "overrides.yaml"
        assert yaml.safe_load(overrides.read_text()) == [f"x={value}"]
    assert not (tmp_path / "multi" / "cosmos_sweep.yaml").exists()

    # A failing job fails the multirun as with the basic launcher, after every job ran.
    (tmp_path / "order.txt").unlink()
    failed = run("x=a,boom,b")
    assert failed.returncode == 1
    assert "boom" in failed.stderr
    assert (tmp_path / "order.txt").read_text() == "a\nboom\nb\n"
