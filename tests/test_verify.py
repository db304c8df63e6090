"""`cosmos verify [--fix]`: the database against the run folders; checksum files for any name.

Damage is done to a real demo output tree as a user (or a disk) would do
it; `sha256sum -c` is the real coreutils tool.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import Project, tree_snapshot
from test_cli import assert_bad_input, ok_json, video_dir

from cosmos_workflow.execution.adapters.base import Invocation, RunOutputs
from cosmos_workflow.manifest.specs import RunSpec
from cosmos_workflow.outputs.store import OUTPUTS_SUMS, OutputStore, RunRecord
from cosmos_workflow.utils.hashing import parse_sums, sums_text

# Names that sha256sum writes escaped (a backslash first on the line).
ODD_NAMES = ("new\nline.mp4", "back\\slash.mp4", "both\\and\nmore.mp4", "carriage\rreturn.mp4")
PLAIN_NAMES = ("output.mp4", "two  spaces.mp4", "caf\u00e9.mp4", " leading space.txt")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_ids(project: Project) -> list[str]:
    return sorted(r["id"] for r in project.cosmos_json("list", "runs"))


def verify_json(project: Project, *args: str) -> tuple[int, dict]:
    done = project.cosmos("verify", *args, "--json")
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


# ---------------------------------------------------------------- checksum files


def test_checksum_lines_are_byte_for_byte_what_sha256sum_writes(tmp_path: Path) -> None:
    names = [*PLAIN_NAMES, *ODD_NAMES]
    for index, name in enumerate(names):
        (tmp_path / name).write_bytes(f"content {index}\n".encode())
    entries = [(sha(tmp_path / name), name) for name in names]
    ours = sums_text(entries)
    real = subprocess.run(
        ["sha256sum", "--", *names], cwd=tmp_path, capture_output=True, check=True
    ).stdout
    assert ours.encode("utf-8") == real
    (tmp_path / "check.sha256").write_text(ours, encoding="utf-8")
    check = subprocess.run(["sha256sum", "-c", "check.sha256"], cwd=tmp_path, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert parse_sums(ours) == entries


@pytest.mark.parametrize(
    "text",
    [
        "not a checksum line\n",
        f"{'a' * 64} missing-second-space\n",
        f"{'A' * 64}  upper-case-digest\n",
        f"\\{'a' * 64}  bad\\escape\n",
        f"\\{'a' * 64}  ends-in-a-backslash\\\n",
        f"{'a' * 63}  short-digest\n",
    ],
)
def test_a_line_that_is_not_sha256sum_format_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="line 1"):
        parse_sums(text)


def test_an_empty_checksum_file_lists_nothing() -> None:
    assert parse_sums("") == []


def test_outputs_with_a_newline_and_a_backslash_in_their_names_check(
    demo_done: Project, tmp_path: Path
) -> None:
    """The store writes outputs.sha256 that sha256sum -c and the store itself accept."""
    run_id = run_ids(demo_done)[0]
    spec = RunSpec.from_dict(
        yaml.safe_load((demo_done.outputs / "runs" / run_id / "run.yaml").read_text())
    )
    staging = tmp_path / "staging"
    staging.mkdir()
    video, prompt = "made\nby\\model.mp4", "said\\by\nmodel.txt"
    (staging / video).write_bytes(b"a video")
    (staging / prompt).write_bytes(b"a prompt")
    log = staging / "job.log"
    log.write_text("log\n")
    invocation = Invocation(
        job_id="jb_test",
        argv=["model"],
        files={},
        inputs={},
        outputs={
            run_id: RunOutputs(video=video, extras={"prompt": prompt}, stored_as="out\\put\n.mp4")
        },
        run_specs={run_id: {}},
    )
    record = RunRecord("succeeded", "local", [0], "jb_test", 1, "t0", "t1", 0, 1)
    store = OutputStore(tmp_path / "outputs")
    folder = store.record_success(spec, invocation, staging, log, record, 1.0)
    sums = (folder / OUTPUTS_SUMS).read_text(encoding="utf-8")
    assert sums.startswith("\\") and "out\\\\put\\n.mp4" in sums
    check = subprocess.run(["sha256sum", "-c", OUTPUTS_SUMS], cwd=folder, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert store.verify_outputs(run_id)
    (folder / "out\\put\n.mp4").write_bytes(b"a vidEo")
    assert not store.verify_outputs(run_id)


def test_a_run_whose_input_names_hold_a_newline_and_a_backslash_checks(project: Project) -> None:
    folder = video_dir(
        project, "odd\\shot\nname", {"color.mp4": "street_color", "depth.mp4": "street_depth"}
    )
    created = ok_json(
        project.cosmos("create", "prompt", "an odd shot", str(folder), "--name", "odd", "--json")
    )
    ran = ok_json(project.cosmos("inference", created["id"], "--weight", "depth=0.4", "--json"))
    run_dir = Path(ran["output_dir"])
    inputs = (run_dir / "inputs.sha256").read_text(encoding="utf-8")
    assert len(inputs.splitlines()) == 2 and all(line[0] == "\\" for line in inputs.splitlines())
    check = subprocess.run(
        ["sha256sum", "-c", "inputs.sha256", "outputs.sha256"], cwd=run_dir, capture_output=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    code, report = verify_json(project)
    assert (code, report["ok"], report["checked"]) == (0, True, 1)


@pytest.mark.parametrize("folder_bytes", [b"latin\xe9shot", b"odd\xffname"])
def test_a_file_name_that_is_not_utf8_is_refused_before_anything_runs(
    project: Project, folder_bytes: bytes
) -> None:
    """Run folders, checksum files and the database keep names as UTF-8: such a name is refused."""
    folder = video_dir(
        project,
        os.fsdecode(folder_bytes),
        {"color.mp4": "street_color", "depth.mp4": "street_depth"},
    )
    before = tree_snapshot(project.outputs)
    done = project.cosmos("create", "prompt", "an odd shot", str(folder), "--name", "odd")
    assert_bad_input(done, "not UTF-8", "rename")
    assert tree_snapshot(project.outputs) == before
    assert project.ledger_lines() == []


# ---------------------------------------------------------------- cosmos verify


def test_a_sound_tree_verifies_and_nothing_is_written(demo_done: Project) -> None:
    before = tree_snapshot(demo_done.outputs)
    code, report = verify_json(demo_done)
    assert code == 0
    assert report["ok"] is True and report["checked"] == 12
    assert report["damaged"] == [] and report["orphaned"] == [] and report["fixed"] == []
    text = demo_done.cosmos("verify")
    assert text.returncode == 0, text.stderr
    assert "12 succeeded run(s) checked" in text.stdout and "no problem" in text.stdout
    assert tree_snapshot(demo_done.outputs) == before


def test_without_a_database_there_is_nothing_to_verify(project: Project) -> None:
    done = project.cosmos("verify")
    assert done.returncode == 0, done.stderr
    assert "0 succeeded run(s) checked" in done.stdout
    assert not project.outputs.exists()


def test_folders_without_a_database_are_orphaned_and_none_is_made(demo_project: Project) -> None:
    (demo_project.outputs / "cosmos.db").unlink()
    code, report = verify_json(demo_project)
    assert code == 1 and report["ok"] is False
    assert len(report["orphaned"]) == 12
    assert not (demo_project.outputs / "cosmos.db").exists()


def damage(project: Project) -> dict[str, str]:
    """Damage seven runs in seven ways, orphan two folders; what each run's problem must name."""
    ids = run_ids(project)
    runs = project.outputs / "runs"
    (runs / ids[0] / "output.mp4").unlink()
    video = runs / ids[1] / "output.mp4"
    data = bytearray(video.read_bytes())
    data[len(data) // 2] ^= 0xFF
    video.write_bytes(bytes(data))  # same size, other content
    with (runs / ids[2] / "output.mp4").open("ab") as handle:
        handle.write(b"appended")
    (runs / ids[3] / "result.json").unlink()
    shutil.rmtree(runs / ids[4])
    (runs / ids[5] / OUTPUTS_SUMS).unlink()
    deleted = project.cosmos("delete", "run", ids[6], "--yes")
    assert deleted.returncode == 0, deleted.stderr
    shutil.copytree(runs / ids[7], runs / "rs_00000000deadbeef")
    (runs / ids[8] / "control_depth.mp4").write_bytes(b"another control video")
    return {
        ids[0]: "output.mp4 is missing",
        ids[1]: "sha256",
        ids[2]: "bytes",
        ids[3]: "result.json is missing",
        ids[4]: "run folder is missing",
        ids[5]: "outputs.sha256 is missing",
        ids[8]: "control_depth.mp4 has 21 bytes",  # a control video the model computed
    }


def test_verify_names_every_damaged_run_and_orphan_and_changes_nothing(
    demo_project: Project,
) -> None:
    proj = demo_project
    deleted = run_ids(proj)[6]
    expected = damage(proj)
    before = tree_snapshot(proj.outputs)
    code, report = verify_json(proj)
    assert code == 1 and report["ok"] is False
    assert report["checked"] == 11
    found = {item["id"]: item for item in report["damaged"]}
    assert set(found) == set(expected)
    for run_id, fragment in expected.items():
        assert any(fragment in problem for problem in found[run_id]["problems"]), found[run_id]
        assert found[run_id]["fixed"] is False
        assert found[run_id]["output_dir"] == str(proj.outputs / "runs" / run_id)
    orphaned = {item["name"]: item["path"] for item in report["orphaned"]}
    assert set(orphaned) == {deleted, "rs_00000000deadbeef"}
    assert orphaned[deleted] == str(proj.outputs / "runs" / deleted)
    assert report["fixed"] == []

    text = proj.cosmos("verify")
    assert text.returncode == 1
    for run_id, fragment in expected.items():
        assert run_id in text.stdout and fragment in text.stdout
    assert "rs_00000000deadbeef" in text.stdout and "--fix" in text.stdout
    assert tree_snapshot(proj.outputs) == before
    assert len(proj.cosmos_json("list", "runs", "--status", "succeeded")) == 11


def test_fix_marks_damaged_runs_to_run_again_and_deletes_nothing(demo_project: Project) -> None:
    proj = demo_project
    expected = damage(proj)
    files_before = tree_snapshot(proj.outputs / "runs")
    done = proj.cosmos("verify", "--fix")
    assert done.returncode == 1, "the orphaned folders are still there"
    assert f"marked {len(expected)} run(s) failed" in done.stdout
    assert "left in place" in done.stdout and "rs_00000000deadbeef" in done.stdout
    for run_id in expected:
        assert run_id in done.stdout
    assert tree_snapshot(proj.outputs / "runs") == files_before, "no file is removed or changed"
    failed = {r["id"]: r for r in proj.cosmos_json("list", "runs", "--status", "failed")}
    assert set(failed) == set(expected)
    for run_id, fragment in expected.items():
        assert failed[run_id]["error_class"] == "damaged"
        assert (
            fragment in failed[run_id]["error_message"]
            and "verify" in failed[run_id]["error_message"]
        )

    code, report = verify_json(proj)
    assert code == 1 and report["damaged"] == [] and len(report["orphaned"]) == 2
    assert report["checked"] == 4

    # The next run of the sweep executes exactly the damaged runs; the run
    # deleted with its folder kept is adopted again (its outputs verify).
    ledger = len(proj.ledger_lines())
    again = proj.batch("+experiment=demo")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "7 executed (7 succeeded, 0 failed), 5 cached" in again.stdout
    assert len(proj.ledger_lines()) == ledger + 7
    code, report = verify_json(proj)
    assert [item["name"] for item in report["orphaned"]] == ["rs_00000000deadbeef"]
    assert code == 1 and report["checked"] == 12 and report["damaged"] == []
    shutil.rmtree(proj.outputs / "runs" / "rs_00000000deadbeef")
    code, report = verify_json(proj, "--fix")
    assert (code, report["ok"], report["fixed"]) == (0, True, [])


def test_fix_json_lists_what_it_did(demo_project: Project) -> None:
    expected = damage(demo_project)
    code, report = verify_json(demo_project, "--fix")
    assert code == 1
    assert sorted(report["fixed"]) == sorted(expected)
    assert all(item["fixed"] for item in report["damaged"])


def test_records_that_disagree_are_damage_and_names_are_not_followed(
    demo_project: Project,
) -> None:
    """result.json and outputs.sha256 must agree; a recorded name never leaves the folder."""
    proj = demo_project
    ids = run_ids(proj)
    runs = proj.outputs / "runs"
    # An output only outputs.sha256 lists (result.json does not).
    extra = runs / ids[0] / "extra.bin"
    extra.write_bytes(b"not an output")
    with (runs / ids[0] / OUTPUTS_SUMS).open("a", encoding="utf-8") as handle:
        handle.write(f"{sha(extra)}  extra.bin\n")
    # A result.json that says the run failed.
    result = runs / ids[1] / "result.json"
    data = json.loads(result.read_text(encoding="utf-8"))
    result.write_text(json.dumps({**data, "status": "failed"}), encoding="utf-8")
    # A recorded name that points out of the run folder (at a file that matches).
    outside = runs / ids[2] / ".." / ids[3] / "output.mp4"
    with (runs / ids[2] / OUTPUTS_SUMS).open("a", encoding="utf-8") as handle:
        handle.write(f"{sha(outside)}  ../{ids[3]}/output.mp4\n")
    # Entries of runs/ that are no run of the database, whatever their names.
    (runs / "old copy").mkdir()
    (runs / "stray.txt").write_text("x", encoding="utf-8")
    code, report = verify_json(proj)
    assert code == 1
    found = {item["id"]: " | ".join(item["problems"]) for item in report["damaged"]}
    assert set(found) == {ids[0], ids[1], ids[2]}, found
    assert "extra.bin is not listed in result.json" in found[ids[0]]
    assert "result.json says 'failed'" in found[ids[1]]
    assert "is not a file name of its folder" in found[ids[2]]
    assert {item["name"] for item in report["orphaned"]} == {"old copy", "stray.txt"}


def test_a_run_fixed_for_a_line_gone_from_its_checksums_runs_again(demo_project: Project) -> None:
    """What verify calls damaged is not cached: --fix makes it run again, then it verifies."""
    proj = demo_project
    run_id = run_ids(proj)[0]
    sums = proj.outputs / "runs" / run_id / OUTPUTS_SUMS
    kept = [
        line
        for line in sums.read_text(encoding="utf-8").splitlines(True)
        if "output.txt" not in line
    ]
    sums.write_text("".join(kept), encoding="utf-8")
    code, report = verify_json(proj, "--fix")
    assert code == 0 and report["fixed"] == [run_id]
    assert "output.txt is not listed in outputs.sha256" in report["damaged"][0]["problems"]
    dry = proj.batch("+experiment=demo", "dry_run=true")
    assert "12 runs, 11 cached, 1 to run" in dry.stdout, dry.stdout
    ledger = len(proj.ledger_lines())
    again = proj.batch("+experiment=demo")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 executed (1 succeeded, 0 failed), 11 cached" in again.stdout
    assert len(proj.ledger_lines()) == ledger + 1
    code, report = verify_json(proj)
    assert (code, report["ok"], report["damaged"]) == (0, True, [])


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"\xff\xfe{}", "result.json cannot be read"), (b"[1, 2]", "not a JSON object")],
)
def test_an_unreadable_result_json_is_damage_not_a_crash(
    demo_project: Project, content: bytes, problem: str
) -> None:
    proj = demo_project
    run_id = run_ids(proj)[0]
    (proj.outputs / "runs" / run_id / "result.json").write_bytes(content)
    dry = proj.batch("+experiment=demo", "dry_run=true")
    assert dry.returncode == 0 and "Traceback" not in dry.stderr, dry.stderr
    assert "12 runs, 11 cached, 1 to run" in dry.stdout, dry.stdout
    shown = proj.cosmos_json("show", run_id)
    assert shown["id"] == run_id
    code, report = verify_json(proj)
    assert code == 1 and problem in report["damaged"][0]["problems"][0]


def test_runs_of_another_output_tree_are_counted_not_checked(demo_project: Project) -> None:
    """Another machine's output tree on the same database: its runs are not damaged here."""
    proj = demo_project
    env = {
        "COSMOS_PATHS__OUTPUTS": str(proj.root / "other"),
        "COSMOS_DATABASE__URL": f"sqlite:///{proj.outputs / 'cosmos.db'}",
    }
    done = proj.cosmos("verify", "--fix", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert (report["checked"], report["elsewhere"]) == (0, 12)
    assert report["damaged"] == [] and report["fixed"] == []
    assert len(proj.cosmos_json("list", "runs", "--status", "succeeded")) == 12


def test_verify_refuses_arguments_it_does_not_take(demo_done: Project) -> None:
    assert_bad_input(demo_done.cosmos("verify", "rs_0"), "rs_0")
