"""`cosmos inference`, `enhance` and `upscale`: dry runs, several prompts, default weights.

A dry run (`--dry-run`, or `--set dry_run=true`) prints the plan that the
real command then executes (the same run ids, cached or not, the jobs and
where they go) and writes nothing. `cosmos inference` takes several prompts
(ids, prefixes or names, on the command line or in a file) and runs them as
one sweep, batched like a manifest's runs. A prompt's controls get the
default weight of the settings when `--weight` does not give one. And a
staged sweep's dry run counts what its real run executes, whatever was
enhanced by hand before.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, tree_snapshot

RUN_ID = re.compile(r"\brs_[0-9a-f]{16}\b")
DRY = "dry run: nothing was executed"
# The demo's prompts bring no control video (the model computes their depth): a weight is needed.
DEPTH = ("--weight", "depth=0.5")


# -- helpers -----------------------------------------------------------------------
def db_rows(project: Project) -> dict[str, list[str]]:
    """Every row of every table of the project's SQLite database (empty: no database)."""
    path = project.outputs / "cosmos.db"
    if not path.is_file():
        return {}
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(repr(row) for row in db.execute(f'SELECT * FROM "{t}"')) for t in tables}


def state(project: Project) -> tuple[Any, ...]:
    """What a command could write: database rows, the output tree, the ledger."""
    files = {
        name: stat
        for name, stat in tree_snapshot(project.outputs).items()
        if not name.startswith("cosmos.db")
    }
    return db_rows(project), files, project.ledger_lines()


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


def bad(done: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, no traceback, a short message naming every fragment."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) <= 12, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, (fragment, done.stderr)


def prompts_by_name(project: Project) -> dict[str, str]:
    return {p["name"]: p["id"] for p in project.cosmos_json("list", "prompts")}


def create(project: Project, text: str, folder: str, *args: str) -> str:
    done = ok(project.cosmos("create", "prompt", text, folder, *args))
    return done.stdout.strip()


def color_only(project: Project, name: str = "plain") -> str:
    """A folder holding only an input video (a prompt without controls)."""
    folder = project.root / "videos" / name
    folder.mkdir(parents=True)
    shutil.copyfile(project.root / "inputs/demo/street/color.mp4", folder / "color.mp4")
    return str(folder)


def pids(lines: list[dict[str, Any]]) -> set[int]:
    """The model invocations (one process each) that made these ledger lines."""
    return {line["pid"] for line in lines}


def spec_weights(run_dir: Path) -> dict[str, float]:
    spec = json.loads((run_dir / "spec.json").read_text(encoding="utf-8"))
    return {
        key: value["control_weight"]
        for key, value in spec.items()
        if isinstance(value, dict) and "control_weight" in value
    }


def planned_states(stdout: str) -> dict[str, str]:
    """run id -> 'cached' or 'to run', from the lines of a plan that start with a run id."""
    found = {}
    for line in stdout.splitlines():
        match = re.match(r"^  (rs_[0-9a-f]{16})\s.*\s(cached|to run)(\s+job \d+)?$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def jobs_of(stdout: str) -> list[dict[str, str]]:
    """The job lines of a plan: number, stage, adapter, runs, target, gpus."""
    pattern = re.compile(
        r"^  job (?P<job>\d+)\s+(?P<stage>\w+)\s+(?P<adapter>\S+)\s+(?P<runs>\d+) runs?\s+"
        r"on (?P<target>\S+) gpus? (?P<gpus>[\d,]+)$"
    )
    return [m.groupdict() for m in map(pattern.match, stdout.splitlines()) if m]


# -- dry runs ----------------------------------------------------------------------
def test_an_inference_dry_run_prints_the_plan_and_writes_nothing(demo_project: Project) -> None:
    project = demo_project
    street = prompts_by_name(project)["street"]
    before = state(project)
    dry = ok(project.cosmos("inference", street, *DEPTH, "--seed", "9", "--dry-run"))
    assert state(project) == before
    assert DRY in dry.stdout
    ((run_id, status),) = planned_states(dry.stdout).items()
    assert status == "to run"
    (job,) = jobs_of(dry.stdout)
    assert job == {
        "job": "1",
        "stage": "main",
        "adapter": "simulated",
        "runs": "1",
        "target": "local",
        "gpus": "0",
    }
    assert re.search(rf"^  {run_id} .* to run\s+job 1$", dry.stdout, re.M)

    # The real command makes exactly that run; now the dry run says it is cached.
    real = json.loads(
        ok(project.cosmos("inference", street, *DEPTH, "--seed", "9", "--json")).stdout
    )
    assert real["id"] == run_id and real["cached"] is False
    again = ok(project.cosmos("inference", street, *DEPTH, "--seed", "9", "--dry-run"))
    assert planned_states(again.stdout) == {run_id: "cached"}
    assert jobs_of(again.stdout) == []
    assert "0 to run" in again.stdout


def test_dry_run_json_is_the_same_plan(demo_project: Project) -> None:
    project = demo_project
    street = prompts_by_name(project)["street"]
    before = state(project)
    data = project.cosmos_json("inference", street, *DEPTH, "--seed", "9", "--dry-run")
    assert state(project) == before
    assert data["dry_run"] is True and data["sweep_id"] is None
    (run,) = data["runs"]
    assert RUN_ID.fullmatch(run["id"]) and run["cached"] is False and run["job"] == 1
    assert run["prompt"] == "street"
    (job,) = data["jobs"]
    assert job["target"] == "local" and job["gpus"] == [0] and job["runs"] == 1
    assert data["counts"] == {"runs": 1, "cached": 0, "to_run": 1}


@pytest.mark.parametrize("how", ["--dry-run", "--set=dry_run=true"])
def test_every_run_command_has_a_dry_run_that_the_real_command_follows(
    demo_project: Project, how: str
) -> None:
    project = demo_project
    street = prompts_by_name(project)["street"]
    parent = project.cosmos_json("list", "runs")[0]["id"]
    commands = {
        "inference": ("inference", street, *DEPTH, "--seed", "11"),
        "enhance": ("enhance", street),
        "upscale": ("upscale", parent, "--weight", "0.4"),
    }
    planned = {}
    before = state(project)
    for name, args in commands.items():
        dry = ok(project.cosmos(*args, how))
        assert DRY in dry.stdout, (name, dry.stdout)
        ((run_id, status),) = planned_states(dry.stdout).items()
        assert status == "to run", (name, dry.stdout)
        assert len(jobs_of(dry.stdout)) == 1, (name, dry.stdout)
        planned[name] = run_id
    assert state(project) == before, "a dry run wrote something"

    ran = {name: project.cosmos_json(*args) for name, args in commands.items()}
    assert ran["inference"]["id"] == planned["inference"]
    assert ran["enhance"]["run"]["id"] == planned["enhance"]
    assert ran["upscale"]["id"] == planned["upscale"]
    for name, args in commands.items():
        dry = ok(project.cosmos(*args, how))
        assert planned_states(dry.stdout) == {planned[name]: "cached"}, name


def test_several_prompts_with_dry_run_set_print_the_plan_and_write_nothing(
    demo_project: Project,
) -> None:
    project = demo_project
    names = prompts_by_name(project)
    args = ("inference", names["street"], names["forest"], *DEPTH, "--seed", "14")
    before = state(project)
    dry = ok(project.cosmos(*args, "--set", "dry_run=true"))
    assert state(project) == before, "--set dry_run=true ran the sweep"
    assert DRY in dry.stdout
    planned = planned_states(dry.stdout)
    assert len(planned) == 2 and set(planned.values()) == {"to run"}
    data = project.cosmos_json(*args, "--set", "dry_run=true")
    assert data["dry_run"] is True and data["sweep_id"] == sweep_id_of(dry.stdout)
    assert state(project) == before


def test_dry_run_false_runs(demo_project: Project) -> None:
    project = demo_project
    street = prompts_by_name(project)["street"]
    data = project.cosmos_json(
        "inference", street, *DEPTH, "--seed", "12", "--set", "dry_run=false"
    )
    assert data["status"] == "succeeded" and data["cached"] is False


def test_a_dry_run_shows_jobs_over_every_gpu(demo_project: Project) -> None:
    project = demo_project
    names = prompts_by_name(project)
    args = ("inference", names["street"], names["forest"], *DEPTH, "--seed", "13")
    gpus = ("--set", "target.gpus=[0,1]")
    dry = ok(project.cosmos(*args, *gpus, "--dry-run"))
    jobs = jobs_of(dry.stdout)
    assert sorted(job["gpus"] for job in jobs) == ["0", "1"]
    assert all(job["runs"] == "1" and job["target"] == "local" for job in jobs)
    before = len(project.ledger_lines())
    ok(project.cosmos(*args, *gpus))
    made = project.ledger_lines()[before:]
    assert len(pids(made)) == len(jobs)
    assert sorted(line["cuda_visible_devices"] for line in made) == ["0", "1"]


def test_bad_input_of_a_dry_run_is_still_bad_input(demo_project: Project) -> None:
    project = demo_project
    before = state(project)
    bad(project.cosmos("inference", "ps_ffffffffffffffff", "--dry-run"), "ps_ffffffffffffffff")
    bad(project.cosmos("upscale", "rs_ffffffffffffffff", "--dry-run"), "rs_ffffffffffffffff")
    bad(project.cosmos("inference", "street", "--set", "dry_run=maybe"), "dry_run")
    assert state(project) == before


# -- several prompts, one sweep ------------------------------------------------------------
@pytest.fixture
def three(project: Project) -> tuple[Project, list[str]]:
    """Three prompts with a depth control each (two scenes), nothing run yet."""
    ids = [
        create(project, "A rainy street, first take", "inputs/demo/street", "--name", "one"),
        create(project, "A misty forest trail", "inputs/demo/forest", "--name", "two"),
        create(project, "A rainy street, second take", "inputs/demo/street", "--name", "three"),
    ]
    return project, ids


def test_several_prompts_run_as_one_sweep_in_one_model_load(three) -> None:
    project, ids = three
    dry = ok(project.cosmos("inference", *ids, "--seed", "3", "--dry-run"))
    header = re.search(
        r"^sweep (sw_[0-9a-f]{16}) \(inference\): 3 runs, 0 cached, 3 to run$", dry.stdout, re.M
    )
    assert header, dry.stdout
    planned = planned_states(dry.stdout)
    assert len(planned) == 3 and set(planned.values()) == {"to run"}
    (job,) = jobs_of(dry.stdout)
    assert job["runs"] == "3"

    done = ok(project.cosmos("inference", *ids, "--seed", "3"))
    assert "3 runs: 3 executed (3 succeeded, 0 failed), 0 cached" in done.stdout
    assert header.group(1) in done.stdout
    lines = project.ledger_lines()
    assert len(lines) == 3 and len(pids(lines)) == 1, "one model load for the three prompts"
    (sweep,) = project.cosmos_json("list", "sweeps")
    assert sweep["id"] == header.group(1) and sweep["runs"] == 3
    members = {r["id"] for r in project.cosmos_json("show", sweep["id"])["runs"]}
    assert members == set(planned)
    assert (Path(sweep["output_dir"]) / "report.html").is_file()

    # The same command again: the same sweep, every run cached, nothing executed.
    again = ok(project.cosmos("inference", *reversed(ids), "--seed", "3"))
    assert "3 runs: 0 executed (0 succeeded, 0 failed), 3 cached" in again.stdout
    assert len(project.ledger_lines()) == 3
    assert [s["id"] for s in project.cosmos_json("list", "sweeps")] == [sweep["id"]]


def test_several_prompts_json(three) -> None:
    project, ids = three
    data = project.cosmos_json("inference", *ids, "--seed", "4")
    assert data["sweep_id"].startswith("sw_")
    assert data["executed"] == 3 and data["cached"] == 0 and data["failed"] == []
    assert sorted(r["prompt_id"] for r in data["runs"]) == sorted(ids)
    assert {r["status"] for r in data["runs"]} == {"succeeded"}
    assert all(r["weights"] == {"depth": 0.5} for r in data["runs"])


def test_prompts_with_other_controls_need_another_model_load(three) -> None:
    project, ids = three
    plain = create(project, "A plain street", color_only(project), "--name", "plain")
    done = ok(project.cosmos("inference", *ids, plain, "--weight", "vis=0.2", "--seed", "5"))
    assert "4 runs: 4 executed" in done.stdout
    lines = project.ledger_lines()
    assert len(lines) == 4 and len(pids(lines)) == 2, "depth+vis and vis alone cannot share"
    by_prompt = {
        run["prompt_id"]: spec_weights(Path(run["output_dir"]))
        for run in project.cosmos_json("list", "runs")
    }
    assert by_prompt[plain] == {"vis": 0.2}
    assert all(by_prompt[i] == {"vis": 0.2, "depth": 0.5} for i in ids)


def test_prompts_by_name_prefix_and_file(three) -> None:
    project, ids = three
    listing = project.write(
        "prompts.txt",
        f"# the takes\n{ids[0]}\n\n  two  \n   # an indented comment\n{ids[2][:9]}\n",
    )
    from_file = ok(project.cosmos("inference", "--prompts-file", str(listing), "--dry-run"))
    by_args = ok(project.cosmos("inference", ids[0], "two", ids[2], "--dry-run"))
    assert planned_states(from_file.stdout) == planned_states(by_args.stdout)
    assert len(planned_states(by_args.stdout)) == 3
    # A file and arguments together: the union, in order.
    one = project.write("one.txt", "one\n")
    both = ok(project.cosmos("inference", "two", "three", "--prompts-file", str(one), "--dry-run"))
    assert planned_states(both.stdout) == planned_states(by_args.stdout)
    helped = ok(project.cosmos("inference", "--help")).stdout
    assert "--prompts-file" in helped and "one prompt per line" in helped


def test_a_name_means_the_prompt_typed_in_not_those_made_from_it(three) -> None:
    project, ids = three
    enhanced = project.cosmos_json("enhance", ids[0])["id"]
    assert project.cosmos_json("show", enhanced)["name"] == "one"
    by_name = ok(project.cosmos("inference", "one", "--dry-run"))
    by_id = ok(project.cosmos("inference", ids[0], "--dry-run"))
    assert planned_states(by_name.stdout) == planned_states(by_id.stdout)
    other = ok(project.cosmos("inference", enhanced, "--dry-run"))
    assert planned_states(other.stdout) != planned_states(by_id.stdout)


def test_a_prompt_given_twice_runs_once(three) -> None:
    project, ids = three
    done = ok(project.cosmos("inference", ids[0], "one", ids[0][:8], ids[1], "--seed", "6"))
    assert "2 runs: 2 executed" in done.stdout
    assert "given 3 times" in done.stdout
    assert len(project.ledger_lines()) == 2


def test_one_prompt_makes_no_sweep(three) -> None:
    project, _ = three
    data = project.cosmos_json("inference", "two", "--seed", "7")
    assert data["status"] == "succeeded"
    assert project.cosmos_json("list", "sweeps") == []


def test_bad_prompt_lists_are_refused_whole(three) -> None:
    project, ids = three
    create(project, "Another first take", "inputs/demo/forest", "--name", "one")
    empty = project.write("empty.txt", "")
    comments = project.write("comments.txt", "# nothing here\n\n   \n")
    listing = project.write("list.txt", f"{ids[0]}\nnobody\n")
    latin = project.root / "latin.txt"
    latin.write_bytes(b"caf\xe9\n")
    before = state(project)
    cases = {
        "unknown id": (("ps_ffffffffffffffff", ids[1]), ("ps_ffffffffffffffff",)),
        "unknown name": ((ids[1], "nobody", "nothing"), ("'nobody'", "'nothing'")),
        "ambiguous name": (("one",), ("'one'", "ambiguous")),
        "run id": (("rs_ffffffffffffffff",), ("rs_ffffffffffffffff",)),
        "line of a file": (("--prompts-file", str(listing)), (f"{listing}:2", "'nobody'")),
        "empty file": (("--prompts-file", str(empty)), (str(empty), "no prompt")),
        "only comments": (("--prompts-file", str(comments)), (str(comments), "no prompt")),
        "missing file": (("--prompts-file", "nothere.txt"), ("nothere.txt",)),
        "not UTF-8": (("--prompts-file", str(latin)), (str(latin), "UTF-8")),
        "none at all": ((), ("PROMPT",)),
    }
    for case, (args, fragments) in cases.items():
        done = project.cosmos("inference", *args, "--weight", "depth=0.5")
        try:
            bad(done, *fragments)
        except AssertionError as exc:
            raise AssertionError(f"{case}: {exc}") from exc
    assert state(project) == before


def test_a_prompts_file_must_be_a_regular_file_of_reasonable_size(three) -> None:
    project, ids = three
    big = project.write("big.txt", f"{ids[0]}\n" + f"# {'x' * 1000}\n" * 1100)  # over 1 MiB
    before = state(project)
    bad(project.cosmos("inference", "--prompts-file", str(big), "--dry-run"), str(big), "MiB")
    # A named pipe (or a device) is refused unread: it might never end.
    pipe = project.root / "prompts.fifo"
    os.mkfifo(pipe)
    keeper = os.open(pipe, os.O_RDWR | os.O_NONBLOCK)
    os.write(keeper, f"{ids[0]}\n".encode())
    closer = threading.Timer(0.5, os.close, (keeper,))
    closer.start()
    try:
        done = project.cosmos("inference", "--prompts-file", str(pipe), "--dry-run")
    finally:
        closer.join()
    bad(done, str(pipe), "not a regular file")
    assert state(project) == before


def test_a_problem_of_every_prompt_is_said_once(three) -> None:
    project, ids = three
    extra = [
        create(project, f"Take {n}", "inputs/demo/street", "--name", f"take{n}") for n in range(3)
    ]
    before = state(project)
    done = project.cosmos("inference", *ids, *extra, "--num-gpus", "4")
    bad(done, "model.num_gpus", "one (", "and 3 more")
    assert done.stderr.count("model.num_gpus") == 1
    assert state(project) == before


def test_no_prompt_and_an_empty_database_writes_nothing(project: Project) -> None:
    bad(project.cosmos("inference", "street"), "street")
    assert not project.outputs.exists()


# -- default weights -------------------------------------------------------------------
def test_a_prompt_without_weights_gets_the_default_and_says_so(three) -> None:
    project, ids = three
    done = ok(project.cosmos("inference", ids[0], "--seed", "8"))
    assert re.search(
        r"^weights: depth=0\.5 \(default: inference\.default_weight\)$", done.stdout, re.M
    ), done.stdout
    run_id = RUN_ID.search(done.stdout).group()
    assert spec_weights(project.outputs / "runs" / run_id) == {"depth": 0.5}
    data = project.cosmos_json("inference", ids[0], "--seed", "8")
    assert data["id"] == run_id and data["cached"] is True
    assert data["weights"] == {"depth": 0.5}
    assert data["default_weights"] == {"depth": "inference.default_weight"}
    # The same run as an explicit weight of the same value.
    explicit = project.cosmos_json("inference", ids[0], "--seed", "8", "--weight", "depth=0.5")
    assert explicit["id"] == run_id and explicit["default_weights"] == {}


def test_a_plan_and_a_sweep_say_which_defaults_they_used(three) -> None:
    project, ids = three
    plain = create(project, "A plain street", color_only(project), "--name", "plain")
    args = ("inference", *ids, plain, "--weight", "vis=0.2", "--seed", "10")
    note = (
        "note: default weight depth=0.5 (from inference.default_weight; --weight depth=W "
        "sets another) for 3 prompt(s)"
    )
    dry = ok(project.cosmos(*args, "--dry-run"))
    assert dry.stdout.count("note: default weight") == 1 and note in dry.stdout, dry.stdout
    done = ok(project.cosmos(*args))
    assert note in done.stdout, done.stdout
    set_depth = ok(project.cosmos(*args, "--set", "inference.weights.depth=0.7", "--dry-run"))
    assert "default weight depth=0.7 (from inference.weights.depth;" in set_depth.stdout
    given = ok(project.cosmos(*args, "--weight", "depth=0.4", "--dry-run"))
    assert "default weight" not in given.stdout


@pytest.mark.parametrize(
    ("args", "weights", "source"),
    [
        (("--set", "inference.default_weight=0.3"), {"depth": 0.3}, "inference.default_weight"),
        (("--set", "inference.weights.depth=0.7"), {"depth": 0.7}, "inference.weights.depth"),
        (
            ("--set", "inference.weights.depth=0.7", "--weight", "depth=0.2"),
            {"depth": 0.2},
            None,
        ),
        (("--weight", "vis=0.1"), {"vis": 0.1, "depth": 0.5}, "inference.default_weight"),
        (("--set", "inference.weights.seg=0.9"), {"depth": 0.5}, "inference.default_weight"),
    ],
)
def test_which_weight_wins(three, args, weights, source) -> None:
    project, ids = three
    data = project.cosmos_json("inference", ids[1], "--seed", "9", *args)
    assert data["weights"] == weights
    assert data["default_weights"] == ({"depth": source} if source else {})
    assert spec_weights(Path(data["output_dir"])) == weights


def test_a_weight_of_zero_given_is_kept_not_defaulted(three) -> None:
    project, ids = three
    data = project.cosmos_json(
        "inference", ids[1], "--seed", "9", "--weight", "depth=0", "--weight", "vis=0.2"
    )
    assert data["weights"] == {"vis": 0.2, "depth": 0.0}
    assert data["default_weights"] == {}
    assert spec_weights(Path(data["output_dir"])) == {"vis": 0.2, "depth": 0.0}


def test_without_default_weight_a_control_needs_one(three) -> None:
    project, ids = three
    before = state(project)
    off = ("--set", "inference.default_weight=null")
    bad(
        project.cosmos("inference", ids[0], *off),
        "depth",
        "--weight depth=W",
        "inference.default_weight",
    )
    bad(project.cosmos("inference", *ids, *off, "--dry-run"), "depth", ids[1])
    assert state(project) == before
    assert ok(project.cosmos("inference", ids[0], *off, "--weight", "depth=0.4"))


def test_a_prompt_without_controls_needs_a_weight(three) -> None:
    project, _ = three
    plain = create(project, "A plain street", color_only(project))
    before = state(project)
    bad(project.cosmos("inference", plain), plain, "no control videos", "--weight KEY=W", "depth")
    bad(project.cosmos("inference", plain, "--set", "inference.default_weight=null"), plain)
    assert state(project) == before
    data = project.cosmos_json("inference", plain, "--weight", "edge=0.3")
    assert data["weights"] == {"edge": 0.3} and data["default_weights"] == {}


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("inference.default_weight=-1", "inference.default_weight"),
        ("inference.default_weight=true", "inference.default_weight"),
        ("inference.weights.bogus=0.5", "inference.weights"),
        ("inference.weights.depth=-0.5", "inference.weights.depth"),
    ],
)
def test_bad_default_weights_are_refused(three, override: str, key: str) -> None:
    project, ids = three
    before = state(project)
    bad(project.cosmos("inference", ids[0], "--set", override), key)
    assert state(project) == before


# -- a staged sweep: what the dry run counts is what runs ---------------------------------
def stage_counts(stdout: str) -> dict[str, tuple[int, int, int]]:
    """(runs, cached, to run) of the sweep and each stage, from a dry run."""
    found = {}
    main = re.search(r"^sweep sw_\w+ \(.+\): (\d+) runs, (\d+) cached, (\d+) to run$", stdout, re.M)
    found["main"] = tuple(map(int, main.groups()))
    for stage in ("enhance", "upscale"):
        line = re.search(
            rf"^{stage} stage \((?:before|after) the sweep\): (\d+) runs, (\d+) cached, "
            r"(\d+) to run$",
            stdout,
            re.M,
        )
        found[stage] = tuple(map(int, line.groups()))
    return found


def executed_counts(stdout: str) -> dict[str, tuple[int, int, int]]:
    """(runs, cached, executed) of the sweep and each stage, from a real run's summary."""
    pattern = (
        r"(\d+) (?:enhancement |upscale )?runs: (\d+) executed \(\d+ succeeded, 0 failed\), "
        r"(\d+) cached"
    )
    found = {}
    for stage, prefix in (
        ("main", r"sweep sw_\w+ \(.+\): "),
        ("enhance", "enhance stage: "),
        ("upscale", "upscale stage: "),
    ):
        line = re.search(rf"^{prefix}{pattern}", stdout, re.M)
        assert line, (stage, stdout)
        total, executed, cached = map(int, line.groups())
        found[stage] = (total, cached, executed)
    return found


def sweep_id_of(stdout: str) -> str:
    return re.search(r"^sweep (sw_[0-9a-f]{16}) ", stdout, re.M).group(1)


def test_a_staged_dry_run_counts_what_the_real_run_executes(demo_project: Project) -> None:
    project = demo_project
    # One prompt enhanced by hand first (the demo ran before: its runs are cached).
    ok(project.cosmos("enhance", prompts_by_name(project)["street"]))
    runs_before = {r["id"] for r in project.cosmos_json("list", "runs", "--limit", "1000")}
    before = state(project)
    dry = ok(project.batch("+experiment=demo_stages", "dry_run=true"))
    assert state(project) == before
    planned = stage_counts(dry.stdout)
    assert planned == {"main": (6, 0, 6), "enhance": (2, 1, 1), "upscale": (6, 0, 6)}
    assert re.search(r"^total: 13 runs to run in \d+ jobs?, 1 cached$", dry.stdout, re.M)
    jobs = jobs_of(dry.stdout)
    assert [job["stage"] for job in jobs].count("enhance") == 1
    # The three runs of the enhanced prompt have their real ids; the others follow.
    assert len(planned_states(dry.stdout)) == 3 + 2

    ledger = len(project.ledger_lines())
    real = ok(project.batch("+experiment=demo_stages"))
    assert sweep_id_of(real.stdout) == sweep_id_of(dry.stdout)
    assert executed_counts(real.stdout) == planned
    made = {r["id"] for r in project.cosmos_json("list", "runs", "--limit", "1000")} - runs_before
    assert len(made) == 13
    videos = project.ledger_lines()[ledger:]
    model_jobs = [job for job in jobs if job["stage"] != "enhance"]
    assert len(videos) == sum(int(job["runs"]) for job in model_jobs)
    assert len(pids(videos)) == len(model_jobs), "the jobs the dry run showed"
    (sweep,) = [s for s in project.cosmos_json("list", "sweeps") if s["name"] == "demo_stages"]
    assert sweep["id"] == sweep_id_of(dry.stdout)

    # Once made, everything is cached, under the same sweep.
    again = ok(project.batch("+experiment=demo_stages", "dry_run=true"))
    assert sweep_id_of(again.stdout) == sweep["id"]
    assert stage_counts(again.stdout) == {
        "main": (6, 6, 0),
        "enhance": (2, 2, 0),
        "upscale": (6, 6, 0),
    }


def test_a_staged_sweep_keeps_its_id_from_plan_to_run(project: Project) -> None:
    dry = ok(project.batch("+experiment=demo_stages", "stages.upscale=null", "dry_run=true"))
    assert "2 prompt(s) are enhanced first" in dry.stdout
    assert stage_counts_main(dry.stdout) == (6, 0, 6)
    real = ok(project.batch("+experiment=demo_stages", "stages.upscale=null"))
    assert sweep_id_of(real.stdout) == sweep_id_of(dry.stdout)
    plain = ok(
        project.batch(
            "+experiment=demo_stages", "stages.enhance=false", "stages.upscale=null", "dry_run=true"
        )
    )
    assert sweep_id_of(plain.stdout) != sweep_id_of(dry.stdout), "another sweep"


def stage_counts_main(stdout: str) -> tuple[int, ...]:
    main = re.search(r"^sweep sw_\w+ \(.+\): (\d+) runs, (\d+) cached, (\d+) to run$", stdout, re.M)
    return tuple(map(int, main.groups()))
