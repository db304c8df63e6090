"""Cosmos-Transfer2.5 end to end: the stand-in keeps the real program's contract,
and what cosmos-batch renders runs on it.

The stand-in (tests/fakes/transfer2_5/examples/inference.py) is a process
here, so the first tests run it as one: they pin the contract it was written
to (from NVIDIA's code, see docs/models.md), so a test of ours that passes
against it means the real program takes the same files. The last ones run
sweeps through cosmos-batch on the local target with the stand-in in place
of the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Project, make_project
from test_demo_sweep import free_box_metadata

from cosmos_workflow.config.settings import Transfer25Settings
from cosmos_workflow.execution.adapters.base import JobLayout
from cosmos_workflow.execution.adapters.transfer2_5 import Transfer25Adapter
from cosmos_workflow.manifest.specs import InputFile, PromptInputSet, ResolvedPrompt, RunSpec

WORKSPACE = Path(__file__).resolve().parent / "fakes" / "transfer2_5"
# An ASCII locale, without the interpreter's ways around it.
ASCII_LOCALE = {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
NON_ASCII = "Caf\u00e9 \u00e0 T\u014dky\u014d \u2014 \u6771\u4eac"


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    for name in ("color.mp4", "edge.mp4", "mask.mp4", "look.jpg", "still.png"):
        (folder / name).write_bytes(b"\x00\x00\x00\x08skip")  # one empty MP4 box
    return folder


def sample(media: Path, name: str, **changes: Any) -> dict[str, Any]:
    data = {
        "name": name,
        "prompt": f"scene {name}",
        "video_path": str(media / "color.mp4"),
        "edge": {"control_weight": 1.0},
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


class Ran:
    """One finished run of the stand-in: exit code, console, output folder."""

    def __init__(self, done: subprocess.CompletedProcess, out: Path, log: Path) -> None:
        self.code = done.returncode
        self.stdout = done.stdout.decode("utf-8", "replace")
        self.stderr = done.stderr.decode("utf-8", "replace")
        self.out = out
        self.calls = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []

    def made(self) -> set[str]:
        return {p.name for p in self.out.iterdir()} if self.out.is_dir() else set()


def run_program(
    tmp_path: Path,
    samples: list[dict[str, Any] | bytes],
    *flags: str,
    env: dict[str, str] | None = None,
) -> Ran:
    """Run the stand-in on ``samples`` (dicts are written as ASCII JSON)."""
    folder = tmp_path / "samples"
    folder.mkdir(exist_ok=True)
    paths = []
    for number, item in enumerate(samples):
        path = folder / f"s{number}.json"
        path.write_bytes(item if isinstance(item, bytes) else json.dumps(item).encode())
        paths.append(str(path))
    out, log = tmp_path / "out", tmp_path / "calls.jsonl"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COSMOS_", "PYTHON", "LC_"))}
    done = subprocess.run(
        [sys.executable, "examples/inference.py", "-i", *paths, "-o", str(out), *flags],
        cwd=WORKSPACE,
        env={**base, "FAKE_T25_LOG": str(log), **(env or {})},
        capture_output=True,
        timeout=60,
    )
    return Ran(done, out, log)


def outputs_of(name: str, *controls: str) -> set[str]:
    return {f"{name}.mp4", f"{name}.json", f"{name}.txt"} | {
        f"{name}_control_{key}.mp4" for key in controls
    }


# -- the stand-in keeps the real contract ------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        {"sigma_max": 80.0},  # a string in the sample model
        {"num_conditional_frames": 3},
        {"max_frames": 0},
        {"num_video_frames_per_chunk": 0},
        {"guidance": 3.5},
        {"guidance": 8},
        {"seed": "many"},
        {"resolution": 720},
        {"negative_prompt": None},
        {"edge": {"control_weight": 1.5}},
        {"edge": {"control_weight": 1.0, "preset_blur_strength": "low"}},
        {"edge": {"control_weight": 1.0, "preset_edge_threshold": "extreme"}},
        {"edge": ..., "depth": ...},
        # (paths are read from the sample file's folder: the image exists, the pair is refused)
        {"vis": {"control_weight": 1.0}, "image_context_path": "../media/look.jpg"},
        {"video_path": "missing.mp4"},
        {"fps": 24},
    ],
    ids=repr,
)
def test_one_bad_sample_ends_the_whole_invocation_before_any_video(
    tmp_path: Path, media: Path, bad: dict
) -> None:
    ran = run_program(tmp_path, [sample(media, "good"), sample(media, "bad", **bad)])
    assert ran.code == 1
    assert "Error validating parameters" in ran.stderr
    assert not any(name.endswith(".mp4") for name in ran.made())


@pytest.mark.parametrize("controls", [["depth"], ["edge", "depth"]])
def test_the_distilled_checkpoint_exists_for_edge_alone(
    tmp_path: Path, media: Path, controls: list[str]
) -> None:
    """No ModelKey(variant, distilled=True) but edge's: loading the model fails (KeyError)."""
    one = sample(media, "one", edge=...)
    one.update({key: {"control_weight": 0.5} for key in controls})
    experimental = {"COSMOS_EXPERIMENTAL_CHECKPOINTS": "1"}
    ran = run_program(tmp_path, [one], "--model=edge/distilled", env=experimental)
    assert ran.code == 1
    assert "KeyError" in ran.stderr
    assert not any(name.endswith(".mp4") for name in ran.made())


def test_relative_paths_are_read_from_the_sample_files_folder(tmp_path: Path, media: Path) -> None:
    relative = sample(media, "near", video_path="../media/color.mp4", prompt_path=...)
    ran = run_program(tmp_path, [relative])
    assert ran.code == 0, ran.stderr
    assert outputs_of("near", "edge") <= ran.made()


def test_sample_names_must_be_unique_across_files(tmp_path: Path, media: Path) -> None:
    ran = run_program(tmp_path, [sample(media, "twin"), sample(media, "twin")])
    assert ran.code == 1
    assert "not unique" in ran.stderr


@pytest.mark.parametrize(
    ("flags", "env", "code"),
    [
        (["--model=canny"], {}, 2),
        (["--model=edge/distilled"], {}, 2),
        (["--model=edge/distilled"], {"COSMOS_EXPERIMENTAL_CHECKPOINTS": "1"}, 0),
        (["--model=edge/distilled"], {"COSMOS_EXPERIMENTAL_CHECKPOINTS": "yes"}, 0),
        (["--model=edge/distilled"], {"COSMOS_INTERNAL": "true"}, 0),
        (
            ["--model=edge/distilled"],
            {"COSMOS_INTERNAL": "1", "COSMOS_EXPERIMENTAL_CHECKPOINTS": "0"},
            2,
        ),
        (["--seeds=3"], {}, 2),
        (["--compile-tokenizer=fast"], {}, 2),
        (["--checkpoint-path=missing/model.pt"], {}, 1),
        (["--checkpoint-path=s3://bucket/model"], {}, 1),
        (["--checkpoint-path=hf://nvidia/repo/model.pt", "--experiment=x"], {}, 0),
        (["--config-file=my_config.py", "--no-keep-going", "--offload-guardrail-models"], {}, 0),
    ],
)
def test_set_up_flags_and_their_choices_are_checked(
    tmp_path: Path, media: Path, flags: list[str], env: dict, code: int
) -> None:
    ran = run_program(tmp_path, [sample(media, "one")], *flags, env=env)
    assert ran.code == code, ran.stderr
    if code == 0:
        assert outputs_of("one", "edge") <= ran.made()
        assert "config.yaml" in ran.made()


@pytest.mark.parametrize(
    ("bad", "env"),
    [
        ({"resolution": "700"}, {}),
        ({"video_path": "still.gif"}, {}),
        ({"sigma_max": "a lot"}, {}),
        ({"sigma_max": "80"}, {"COSMOS_EXPERIMENTAL_CHECKPOINTS": "1"}),
    ],
    ids=repr,
)
def test_what_fails_during_generation_ends_the_invocation_at_that_sample(
    tmp_path: Path, media: Path, bad: dict, env: dict
) -> None:
    (media / "still.gif").write_bytes(b"gif")
    flags = ["--model=edge/distilled"] if env else []
    samples = [sample(media, "a"), sample(media, "b", **bad), sample(media, "c")]
    samples[1]["video_path"] = str(media / samples[1]["video_path"])
    ran = run_program(tmp_path, samples, *flags, env=env)
    assert ran.code == 1
    assert "Traceback" in ran.stderr
    assert outputs_of("a", "edge") <= ran.made()
    assert "b.mp4" not in ran.made() and "c.json" not in ran.made()


def test_one_frame_makes_a_still_image_not_a_video(tmp_path: Path, media: Path) -> None:
    ran = run_program(tmp_path, [sample(media, "still", max_frames=1)])
    assert ran.code == 0, ran.stderr
    assert {"still.jpg", "still_control_edge.jpg"} <= ran.made()
    assert "still.mp4" not in ran.made()


def test_a_blocked_prompt_is_skipped_and_the_batch_goes_on(tmp_path: Path, media: Path) -> None:
    samples = [sample(media, n, prompt=f"scene {n}") for n in ("a", "b", "c", "d")]
    samples[1]["prompt"] = "scene b, forbidden"
    ran = run_program(tmp_path, samples, env={"FAKE_T25_BLOCK": "forbidden"})
    assert ran.code == 0, ran.stderr
    for name in ("a", "c", "d"):
        assert outputs_of(name, "edge") <= ran.made()
    # The real program writes the sample's arguments before the text guardrail, nothing after.
    assert {n for n in ran.made() if n.startswith("b")} == {"b.json"}
    assert "Guardrail blocked generation. Prompt: scene b, forbidden" in ran.stdout
    assert "Processing sample b" in ran.stdout


def test_a_blocked_negative_prompt_blocks_its_sample(tmp_path: Path, media: Path) -> None:
    blocked = sample(media, "b", negative_prompt="forbidden things")
    ran = run_program(tmp_path, [sample(media, "a"), blocked], env={"FAKE_T25_BLOCK": "forbidden"})
    assert ran.code == 0
    assert "Guardrail blocked generation. Negative prompt: forbidden things" in ran.stdout
    assert "b.mp4" not in ran.made() and "a.mp4" in ran.made()


def test_a_blocked_video_keeps_its_control_videos_and_says_nothing(
    tmp_path: Path, media: Path
) -> None:
    samples = [sample(media, "a"), sample(media, "b", prompt="forbidden"), sample(media, "c")]
    ran = run_program(tmp_path, samples, env={"FAKE_T25_BLOCK_VIDEO": "forbidden"})
    assert ran.code == 0
    assert {n for n in ran.made() if n.startswith("b")} == {"b.json", "b_control_edge.mp4"}
    assert "c.mp4" in ran.made()
    assert "guardrail" not in ran.stdout.lower()


@pytest.mark.parametrize("flags", [["--no-keep-going"], ["--disable-guardrails"]])
def test_without_keep_going_a_block_ends_the_batch_and_without_guardrails_none_blocks(
    tmp_path: Path, media: Path, flags: list[str]
) -> None:
    samples = [sample(media, "a"), sample(media, "b", prompt="forbidden"), sample(media, "c")]
    ran = run_program(tmp_path, samples, *flags, env={"FAKE_T25_BLOCK": "forbidden"})
    if flags == ["--no-keep-going"]:
        assert ran.code == 1
        assert "a.mp4" in ran.made() and "c.json" not in ran.made()
    else:
        assert ran.code == 0
        assert {"a.mp4", "b.mp4", "c.mp4"} <= ran.made()


def test_samples_are_read_and_written_with_the_locales_encoding(
    tmp_path: Path, media: Path
) -> None:
    data = sample(media, "u", prompt=NON_ASCII)
    raw = json.dumps(data, ensure_ascii=False).encode("utf-8")
    # Raw UTF-8 cannot be read under an ASCII locale: the program ends before any output ...
    unread = run_program(tmp_path, [raw], env=ASCII_LOCALE)
    assert unread.code == 1
    assert "UnicodeDecodeError" in unread.stderr
    assert unread.made() == set()
    # ... escaped it can, but the program's own NAME.json and NAME.txt cannot be written ...
    assert run_program(tmp_path, [data], env=ASCII_LOCALE).code == 1
    # ... unless Python runs in UTF-8 mode, as the adapter asks.
    ran = run_program(tmp_path, [data], env={**ASCII_LOCALE, "PYTHONUTF8": "1"})
    assert ran.code == 0, ran.stderr
    assert (ran.out / "u.txt").read_text(encoding="utf-8") == NON_ASCII


@pytest.mark.parametrize("first", ["vetoed", "forbidden"])
def test_each_skipped_sample_gets_its_own_reason_from_the_console_log(
    tmp_path: Path, media: Path, first: str
) -> None:
    """A video block logs nothing: a text block of another sample is never its reason."""
    words = [first, "forbidden" if first == "vetoed" else "vetoed"]
    samples = [sample(media, n, prompt=f"scene {n}, {w}") for n, w in zip("ab", words, strict=True)]
    samples.append(sample(media, "c"))
    blocks = {"FAKE_T25_BLOCK": "forbidden", "FAKE_T25_BLOCK_VIDEO": "vetoed"}
    ran = run_program(tmp_path, samples, env=blocks)
    assert ran.code == 0, ran.stderr
    assert "c.mp4" in ran.made() and not {"a.mp4", "b.mp4"} & ran.made()
    adapter = Transfer25Adapter(Transfer25Settings())
    reasons = {w: adapter.skipped_reason(ran.stdout, n) for n, w in zip("ab", words, strict=True)}
    assert reasons["forbidden"] == "blocked by the guardrail: the prompt was judged unsafe"
    assert str(reasons["vetoed"]).startswith("the program skipped it and kept going")


def test_every_output_the_adapter_maps_is_one_the_program_writes(
    tmp_path: Path, media: Path
) -> None:
    def item(name: str, char: str) -> InputFile:
        return InputFile(media / name, char * 64)

    model = yaml.safe_load((Path(__file__).parents[1] / "conf/model/transfer2.5.yaml").read_text())
    runs = []
    for index, weights in enumerate([{"edge": 1.0, "seg": 0.5}, {"edge": 0.5, "seg": 0.5}]):
        block = {**model, "weights": {**model["weights"], **weights}, "controls": {}}
        block["controls"] = {"seg": {"control_prompt": "roads"}, "edge": {"mask_prompt": "cars"}}
        inputs = PromptInputSet(
            video=item("color.mp4", "1"),
            controls={"edge": item("edge.mp4", "2")} if index else {},
            masks={"seg": item("mask.mp4", "3")},
            image_context=item("look.jpg", "4"),
        )
        runs.append(RunSpec(ResolvedPrompt(f"p{index}", NON_ASCII, None, inputs), block))
    adapter = Transfer25Adapter(Transfer25Settings(workspace=str(WORKSPACE)))
    assert [adapter.validate(run) for run in runs] == [[], []]
    assert adapter.batch_key(runs[0]) == adapter.batch_key(runs[1])
    job = tmp_path / "job"
    invocation = adapter.render("jb", runs, JobLayout(str(job), python=sys.executable))
    for relative, content in invocation.files.items():
        (job / relative).parent.mkdir(parents=True, exist_ok=True)
        (job / relative).write_bytes(content)
    for relative, item_ in invocation.inputs.items():
        (job / relative).parent.mkdir(parents=True, exist_ok=True)
        (job / relative).symlink_to(item_.path)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COSMOS_", "PYTHON"))}
    env = {**base, **ASCII_LOCALE, **invocation.env, "FAKE_T25_LOG": str(tmp_path / "log")}
    done = subprocess.run(invocation.argv, cwd=invocation.workdir, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    for run in runs:
        mapped = invocation.outputs[run.id]
        for relative in [mapped.video, *mapped.extras.values(), *mapped.controls.values()]:
            assert (job / relative).is_file(), relative
        assert set(mapped.controls) == {"edge", "seg"}
        made = sorted(p.name for p in (job / "out").glob(f"{run.id}_control_*"))
        assert made == sorted(Path(p).name for p in mapped.controls.values())
        assert free_box_metadata(job / mapped.video) == invocation.run_specs[run.id]


# -- through cosmos-batch ----------------------------------------------------------
FEATURES = """\
# @package _global_
name: t25_features
prompts:
  cafe:
    text: "{text}"
    inputs:
      video: inputs/demo/street/color.mp4
      masks:
        edge: inputs/demo/street/depth.mp4
      image_context: inputs/look.jpg
model:
  seed: 7
  weights:
    edge: 1.0
"""


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    root = tmp_path_factory.mktemp("t25_features")
    project = make_project(root / "project")
    (project.root / "inputs" / "look.jpg").write_bytes(b"\xff\xd8jpeg")
    manifest = project.root / "manifests" / "experiment" / "t25_features.yaml"
    manifest.write_text(FEATURES.format(text=NON_ASCII), encoding="utf-8")
    return project, root / "calls.jsonl"


def t25_batch(project: Project, log: Path, *overrides: str) -> subprocess.CompletedProcess:
    return project.batch(
        "+experiment=t25_features",
        "model=transfer2.5",
        f"adapters.transfer2_5.workspace={WORKSPACE}",
        *overrides,
        env={**ASCII_LOCALE, "FAKE_T25_LOG": str(log)},
    )


def last_run(project: Project) -> dict[str, Any]:
    runs = project.cosmos_json("list", "runs")
    newest = max(runs, key=lambda r: r["created_at"])
    return newest


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model.options.model=edge/distilled"],
        ["model.sigma_max=80", "model.options.experiment=my_edm_experiment"],
        [
            "+model.controls.edge.preset_edge_threshold=high",
            f"+model.controls.seg.mask_prompt='{NON_ASCII}'",
            "model.options.config_file=cosmos_transfer2/my_config.py",
            "model.weights.seg=0.5",
            "+model.controls.seg.control_prompt=roads",
        ],
    ],
    ids=["unicode", "distilled", "sigma_max", "settings"],
)
def test_a_sweep_runs_on_the_program_under_an_ascii_locale(
    features: tuple[Project, Path], overrides: list[str]
) -> None:
    project, log = features
    done = t25_batch(project, log, *overrides)
    assert done.returncode == 0, done.stdout + done.stderr
    run = last_run(project)
    assert run["status"] == "succeeded"
    folder = Path(run["output_dir"])
    spec = json.loads((folder / "spec.json").read_text(encoding="utf-8"))
    assert free_box_metadata(folder / "output.mp4") == spec
    assert spec["prompt"] == NON_ASCII
    assert Path(spec["edge"]["mask_path"]).is_absolute()
    assert (folder / "output.txt").read_text(encoding="utf-8") == NON_ASCII
    call = json.loads(log.read_text().splitlines()[-1])
    assert call["samples"] == [run["id"]]
    if "model.options.model=edge/distilled" in overrides:
        assert call["model"] == "edge/distilled"
    if "model.sigma_max=80" in overrides:
        assert spec["sigma_max"] == "80.0"
        assert call["experiment"] == "my_edm_experiment"
    if "model.weights.seg=0.5" in overrides:
        assert spec["edge"]["preset_edge_threshold"] == "high"
        assert spec["seg"] == {
            "control_weight": 0.5,
            "control_prompt": "roads",
            "mask_prompt": NON_ASCII,
        }
        assert call["config_file"] == "cosmos_transfer2/my_config.py"
        assert call["hint_keys"] == ["edge", "seg"]


BLOCKING = """\
# @package _global_
name: t25_blocking
prompts:
  one: {text: "scene one", inputs: {video: inputs/demo/street/color.mp4}}
  two: {text: "scene two, forbidden", inputs: {video: inputs/demo/street/color.mp4}}
  three: {text: "scene three", inputs: {video: inputs/demo/street/color.mp4}}
  four: {text: "scene four", inputs: {video: inputs/demo/street/color.mp4}}
model:
  weights:
    edge: 1.0
"""


class Blocking:
    """A project whose sweep t25_blocking has four prompts, "two" holding "forbidden"."""

    def __init__(self, tmp_path: Path) -> None:
        self.project = make_project(tmp_path / "project")
        manifest = self.project.root / "manifests" / "experiment" / "t25_blocking.yaml"
        manifest.write_text(BLOCKING, encoding="utf-8")
        self.log = tmp_path / "calls.jsonl"

    def batch(self, *overrides: str, **env: str) -> subprocess.CompletedProcess:
        """cosmos-batch of the sweep on the stand-in (env: its FAKE_T25_* hooks)."""
        return self.project.batch(
            "+experiment=t25_blocking",
            "model=transfer2.5",
            f"adapters.transfer2_5.workspace={WORKSPACE}",
            *overrides,
            env={"FAKE_T25_LOG": str(self.log), **env},
        )

    def calls(self) -> list[dict[str, Any]]:
        """The stand-in's invocations, in order."""
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def runs(self) -> dict[str, dict[str, Any]]:
        """The runs by prompt name."""
        names = {p["id"]: p["name"] for p in self.project.cosmos_json("list", "prompts")}
        return {names[r["prompt_id"]]: r for r in self.project.cosmos_json("list", "runs")}


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        ("FAKE_T25_BLOCK", "blocked by the guardrail: the prompt was judged unsafe"),
        ("FAKE_T25_BLOCK_VIDEO", "the program skipped it and kept going"),
    ],
)
def test_a_sample_the_program_skips_fails_alone_with_its_reason(
    tmp_path: Path, block: str, reason: str
) -> None:
    """Transfer2.5 keeps going past a blocked sample: its batch-mates succeed in one load."""
    sweep = Blocking(tmp_path)
    done = sweep.batch(**{block: "forbidden"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert [len(call["samples"]) for call in sweep.calls()] == [4], "one model load for the four"
    runs = sweep.runs()
    assert {name: r["status"] for name, r in runs.items()} == {
        "one": "succeeded",
        "two": "failed",
        "three": "succeeded",
        "four": "succeeded",
    }
    shown = sweep.project.cosmos("show", runs["two"]["id"])
    assert reason in shown.stdout
    assert "did not write" not in shown.stdout


def test_a_sample_skipped_when_made_again_never_takes_a_damaged_earlier_output(
    tmp_path: Path,
) -> None:
    """The program exits 0 past a blocked sample: the run's old (damaged) video is no output."""
    sweep = Blocking(tmp_path)
    assert sweep.batch().returncode == 0
    two = sweep.runs()["two"]
    folder = Path(two["output_dir"])
    with (folder / "output.mp4").open("ab") as video:
        video.write(b"bytes of a damaged copy")
    assert sweep.project.cosmos("verify", "--fix").returncode == 0
    again = sweep.batch(FAKE_T25_BLOCK="forbidden")
    assert again.returncode == 1, again.stdout + again.stderr
    assert "1 executed (0 succeeded, 1 failed), 3 cached" in again.stdout
    shown = sweep.project.cosmos_json("show", two["id"])
    assert shown["status"] == "failed"
    assert shown["error_message"].startswith("blocked by the guardrail: the prompt")
    assert not (folder / "output.mp4").exists()
    assert sweep.project.cosmos("verify").returncode == 0


def test_without_keep_going_a_blocked_sample_is_isolated_with_its_reason_and_not_retried(
    tmp_path: Path,
) -> None:
    """--no-keep-going ends the program at a blocked sample (exit 1): the samples made
    before it are kept, the rest are tried in halves down to the blocked one, which
    fails with the guardrail's reason; a reason is never retried (scheduler.retries)."""
    sweep = Blocking(tmp_path)
    done = sweep.batch(
        "adapters.transfer2_5.extra_args=[--no-keep-going]",
        "scheduler.retries.deterministic=1",
        "scheduler.retries.backoff_s=0",
        FAKE_T25_BLOCK="forbidden",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "4 executed (3 succeeded, 1 failed)" in done.stdout
    assert all(call["keep_going"] is False for call in sweep.calls())
    assert "run(s) again in" not in done.stderr, "a job was tried again as it was"
    two = sweep.runs()["two"]
    assert [two["id"]] in [call["samples"] for call in sweep.calls()]
    assert two["status"] == "failed"
    assert two["error_message"].startswith(
        f"blocked by the guardrail: the prompt of sample {two['id']} was judged unsafe"
    ), two["error_message"]
