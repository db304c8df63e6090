"""The demo over SSH and Docker on the disposable test host (scripts/test-host):
a network namespace with its own address, a real sshd and a private dockerd.

The "remote host" shares this machine's file system, but the runner only
reaches it through SSH (commands, transfers) and Docker (containers).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import testhost
import yaml
from conftest import Project, make_project
from sshd import keygen
from test_demo_sweep import RUN_FILES, free_box_metadata, plan_ids
from test_simulated_model import install_simulated_model
from test_ssh import INJECTION_CORPUS

from cosmos_workflow.execution.targets.docker import LABEL_PREFIX

FAKES = Path(__file__).resolve().parent / "fakes"


def overrides(host: testhost.TestHost, work_dir: Path, **changes: str) -> list[str]:
    values = dict(o.split("=", 1) for o in host.overrides())
    values["target.work_dir"] = str(work_dir)
    values.update(changes)
    return [f"{key}={value}" for key, value in values.items()]


@pytest.fixture
def remote_project(tmp_path: Path) -> tuple[Project, Path]:
    project = make_project(tmp_path / "proj")
    work_dir = tmp_path / "gpu-host" / "cosmos"
    # The ledger must be visible inside the container: put it in the work dir.
    project.env["COSMOS_SIMULATOR__LEDGER"] = str(work_dir / "ledger.jsonl")
    return project, work_dir


def ledger(work_dir: Path) -> list[dict]:
    path = work_dir / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# Three containers at once (the host has no GPUs: gpu_flags=false): the demo's six
# jobs take two rounds, not six.
THREE_SLOTS = "target.gpus=[0,1,2]"


def test_demo_over_ssh_and_docker_gives_the_local_layout(host, remote_project) -> None:
    project, work_dir = remote_project
    done = project.batch("+experiment=demo", *overrides(host, work_dir), THREE_SLOTS)
    assert done.returncode == 0, done.stderr
    assert "12 executed (12 succeeded, 0 failed), 0 cached" in done.stdout
    assert len(ledger(work_dir)) == 12

    runs = project.cosmos_json("list", "runs")
    assert {r["status"] for r in runs} == {"succeeded"} and len(runs) == 12
    for run in runs:
        folder = Path(run["output_dir"])
        present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        assert RUN_FILES <= present
        check = subprocess.run(["sha256sum", "-c", "outputs.sha256"], cwd=folder)
        assert check.returncode == 0
        result = json.loads((folder / "result.json").read_text())
        assert result["target"] == "test-host" and result["exit_code"] == 0
        spec = json.loads((folder / "spec.json").read_text())
        assert spec["input_video_path"].startswith(str(work_dir / "jobs"))
        assert "[simulated]" in (folder / "logs" / "run.log").read_text()

    # Each input crossed the wire once: 2 files (the color videos) in the host's
    # cache, and a second sweep over the same inputs uploads none of them again.
    cache = sorted((work_dir / "cache").iterdir())
    assert len(cache) == 2
    inodes = {p.name: p.stat().st_ino for p in cache}
    again = project.batch(
        "+experiment=demo", *overrides(host, work_dir), THREE_SLOTS, "model.seed=9"
    )
    assert again.returncode == 0, again.stderr
    assert {p.name: p.stat().st_ino for p in (work_dir / "cache").iterdir()} == inodes
    left = list((work_dir / "jobs").iterdir())
    assert left == [], f"job folders were left on the host: {done.stderr}\n{again.stderr}"


def test_a_sweep_on_a_host_whose_login_shell_prints_succeeds_once_and_verified(
    host, remote_project
) -> None:
    """The test host's login shell prints on stdout and stderr before every command
    (a ~/.bashrc running pyenv or conda, a motd) and its openssl warns on stderr, as
    on many real hosts: every run succeeds with verified outputs, nothing is left on
    the host, and the same command again executes nothing."""
    project, work_dir = remote_project
    shell = subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(host.sshd.client_key),
            "-o",
            f"UserKnownHostsFile={host.sshd.known_hosts}",
            "-o",
            "BatchMode=yes",
            f"{host.sshd.user}@{host.address}",
            "openssl version",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Welcome to" in shell.stdout and "module" in shell.stderr, "the host is not noisy"
    assert "openssl.cnf" in shell.stderr and "OpenSSL" in shell.stdout
    args = ("+experiment=demo", "model.weights.depth=0.5", *overrides(host, work_dir), THREE_SLOTS)
    done = project.batch(*args)
    assert done.returncode == 0, done.stderr
    assert "4 executed (4 succeeded, 0 failed), 0 cached" in done.stdout, done.stdout
    assert "sha256" not in done.stderr and "Welcome" not in done.stderr, done.stderr
    for run in project.cosmos_json("list", "runs"):
        assert run["status"] == "succeeded"
        folder = Path(run["output_dir"])
        assert (
            subprocess.run(["sha256sum", "--quiet", "-c", "outputs.sha256"], cwd=folder).returncode
            == 0
        )
    assert list((work_dir / "jobs").iterdir()) == []
    assert our_containers(host) == []
    again = project.batch(*args)
    assert again.returncode == 0, again.stderr
    assert "0 executed (0 succeeded, 0 failed), 4 cached" in again.stdout, again.stdout
    assert len(ledger(work_dir)) == 4


def our_containers(host: testhost.TestHost) -> list[str]:
    """The ids of the containers of ours on the test host."""
    done = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL_PREFIX}job"],
        env={**os.environ, **host.dockerd.env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def test_transfer1_runs_in_its_checkout_with_its_environment_in_the_container(
    host, remote_project
) -> None:
    """The adapter's working folder and PYTHONPATH reach the container, not only a local run."""
    project, work_dir = remote_project
    # A Transfer1 checkout (the simulated model as transfer.py) and the fake
    # torchrun, on the host under the work dir, which the container mounts.
    workspace = work_dir / "cosmos-transfer1"
    program = workspace / "cosmos_transfer1" / "diffusion" / "inference" / "transfer.py"
    program.parent.mkdir(parents=True)
    install_simulated_model(program)
    tools = work_dir / "bin"
    tools.mkdir()
    shutil.copy(FAKES / "torchrun", tools / "torchrun.py")
    (tools / "torchrun").write_text(f'#!/bin/sh\nexec python3 {tools / "torchrun.py"} "$@"\n')
    (tools / "torchrun").chmod(0o755)
    log = work_dir / "torchrun.jsonl"
    done = project.batch(
        "+experiment=demo",
        *overrides(host, work_dir),
        THREE_SLOTS,
        "model=transfer1",
        "model.seed=1",
        f"adapters.transfer1.workspace={workspace}",
        f"+target.env.PATH={tools}:/usr/bin:/bin",
        f"+target.env.FAKE_TORCHRUN_LOG={log}",
    )
    assert done.returncode == 0, done.stderr
    assert "6 executed (6 succeeded, 0 failed)" in done.stdout
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 3
    for call in calls:
        assert call["cwd"] == str(workspace)
        assert call["pythonpath"] == "."
        assert call["argv"][0] == "cosmos_transfer1/diffusion/inference/transfer.py"
    for run in project.cosmos_json("list", "runs"):
        folder = Path(run["output_dir"])
        spec = yaml.safe_load((folder / "run.yaml").read_text())
        made = free_box_metadata(folder / "output.mp4")
        assert made["prompt"] == (folder / "output.txt").read_text() == spec["prompt"]["text"]
        assert made["seed"] == spec["model"]["seed"]
        assert made["controls"]["depth"]["control_weight"] == spec["model"]["weights"]["depth"]


def test_the_image_that_runs_is_part_of_the_run_id(host, remote_project) -> None:
    project, work_dir = remote_project
    remote = project.batch("+experiment=demo", "dry_run=true", *overrides(host, work_dir))
    other = project.batch(
        "+experiment=demo", "dry_run=true", *overrides(host, work_dir, **{"target.image": "x:2"})
    )
    local = project.batch("+experiment=demo", "dry_run=true")
    ids = [set(plan_ids(done.stdout)) for done in (remote, other, local)]
    assert all(len(found) == 12 for found in ids)
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_a_dropped_connection_reattaches_and_runs_nothing_twice(host, remote_project) -> None:
    project, work_dir = remote_project
    runner = project.start_batch(
        "+experiment=demo",
        *overrides(host, work_dir),
        THREE_SLOTS,
        env={"COSMOS_SIMULATOR__PER_VIDEO_S": "1"},
        capture=True,
    )
    project.wait_for_ledger(1, ledger=work_dir / "ledger.jsonl")
    # Kill the SSH sessions on the host (not the listening sshd): every
    # channel of the runner's connection drops while a container runs.
    sessions = subprocess.run(
        ["pgrep", "-f", f"sshd: {host.sshd.user}"], capture_output=True, text=True
    ).stdout.split()
    assert sessions, "no SSH session to drop"
    for pid in sessions:
        os.kill(int(pid), signal.SIGKILL)
    stdout, stderr = runner.communicate(timeout=240)
    assert runner.returncode == 0, stderr
    assert "following job" in stderr  # re-attached: "host ... answers again after N s"
    assert "12 executed (12 succeeded, 0 failed)" in stdout
    assert len(ledger(work_dir)) == 12, "a run was executed twice"


def test_a_failing_container_keeps_its_log_and_the_rest_go_on(host, remote_project) -> None:
    project, work_dir = remote_project
    done = project.batch(
        "+experiment=demo", *overrides(host, work_dir), THREE_SLOTS, "simulator.fail_on_seed=2"
    )
    assert done.returncode == 1, done.stderr
    assert "12 executed (6 succeeded, 6 failed)" in done.stdout
    for run in project.cosmos_json("list", "runs", "--status", "failed"):
        assert run["exit_code"] == 17, (run, done.stdout[-3000:], done.stderr[-6000:])
        log = (Path(run["output_dir"]) / "logs" / "run.log").read_text()
        assert "simulated failure for seed 2" in log


def test_a_refused_key_exits_3_and_leaves_nothing_on_the_host(
    host, remote_project, tmp_path: Path
) -> None:
    project, work_dir = remote_project
    stranger = keygen(tmp_path / "stranger")
    done = project.batch(
        "+experiment=demo", *overrides(host, work_dir, **{"target.key_file": str(stranger)})
    )
    assert done.returncode == 3, done.stderr
    assert "authentication" in done.stderr and "Traceback" not in done.stderr
    assert not work_dir.exists()


def test_an_unknown_host_key_exits_3(host, remote_project, tmp_path: Path) -> None:
    project, work_dir = remote_project
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    done = project.batch(
        "+experiment=demo", *overrides(host, work_dir, **{"target.known_hosts": str(empty)})
    )
    assert done.returncode == 3, done.stderr
    assert "ssh-keyscan" in done.stderr and str(empty) in done.stderr
    assert empty.read_text() == "" and not work_dir.exists()


def omegaconf_escaped(value: str) -> str:
    """OmegaConf reads ${...} as an interpolation: a manifest escapes it."""
    return value.replace("${", "\\${")


def test_hostile_prompts_names_and_file_names_arrive_intact_and_run_nothing(
    host, remote_project, tmp_path: Path
) -> None:
    """Shell-hostile text crosses SSH, Docker and the spec files verbatim."""
    project, work_dir = remote_project
    # Text may name an absolute canary; a file name cannot hold "/", so it
    # names a relative one, created wherever a shell would run it.
    canary = work_dir / "canary"
    texts = [v.replace("{canary}", str(canary)) for v in INJECTION_CORPUS if v.strip()]
    file_names = [v.replace("{canary}", "canary") for v in INJECTION_CORPUS if v.strip()]
    negative = " && ".join(texts[:3])
    demo = project.root / "inputs" / "demo" / "street"
    prompts = {}
    for index, (text, name) in enumerate(zip(texts, file_names, strict=True)):
        folder = project.root / "inputs" / f"{index} {name}"
        folder.mkdir(parents=True)
        video, depth = folder / f"{name}.MP4", folder / f"depth {name}.mp4"
        shutil.copy(demo / "color.mp4", video)
        shutil.copy(demo / "depth.mp4", depth)
        # A name is one line of printable characters (control characters are refused).
        name_of = "".join(c if c.isprintable() else " " for c in text)
        prompts[f"{name_of} #{index}"] = {
            "text": omegaconf_escaped(text),
            # One negative prompt for all, so that the runs share containers.
            "negative": omegaconf_escaped(negative),
            "inputs": {
                "video": omegaconf_escaped(str(video.relative_to(project.root))),
                "controls": {"depth": omegaconf_escaped(str(depth.relative_to(project.root)))},
            },
        }
    manifest = {"name": "hostile", "prompts": prompts, "model": {"weights": {"depth": 0.5}}}
    project.write(
        "manifests/experiment/hostile.yaml",
        "# @package _global_\n" + json.dumps(manifest, ensure_ascii=False),
    )

    done = project.batch("+experiment=hostile", *overrides(host, work_dir), THREE_SLOTS)
    assert done.returncode == 0, done.stderr
    runs = project.cosmos_json("list", "runs")
    assert len(runs) == len(texts) and {r["status"] for r in runs} == {"succeeded"}
    assert {p["name"] for p in project.cosmos_json("list", "prompts")} == set(prompts)
    arrived = set()
    for run in runs:
        folder = Path(run["output_dir"])
        spec = json.loads((folder / "spec.json").read_text())
        made = free_box_metadata(folder / "output.mp4")
        assert made["prompt"] == spec["prompt"], "the program read another prompt"
        assert made["negative_prompt"] == negative
        assert (folder / "output.txt").read_text() == spec["prompt"]
        recorded = yaml.safe_load((folder / "run.yaml").read_text())["prompt"]["inputs"]
        assert Path(recorded["video"]["path"]).name in {f"{n}.MP4" for n in file_names}
        arrived.add(made["prompt"])
    assert arrived == set(texts)
    # Only content-addressed names reached the host.
    assert all(re.fullmatch(r"[0-9a-f]{64}\.mp4", p.name) for p in (work_dir / "cache").iterdir())
    for root in (tmp_path, Path.home(), Path("/")):
        found = [p for p in root.glob("canary*")] + list(root.glob("*/canary"))
        assert not found, f"user text was executed: {found}"
