"""Bad input: one screen naming the file and key path, exit 2, nothing written."""

from __future__ import annotations

import pytest
from conftest import Project, tree_snapshot

GOOD_PROMPTS = """\
scene:
  text: "A {{ style }} street"
  inputs:
    video: inputs/demo/street/color.mp4
    controls:
      depth: inputs/demo/street/depth.mp4
"""


def experiment(body: str, prompts: str = "bad_prompts") -> str:
    return f"# @package _global_\ndefaults:\n  - /prompts: {prompts}\nname: bad\n{body}"


# case -> (files to write, extra args, fragments that stderr must contain)
CASES = {
    "unknown key": (
        {"manifests/experiment/bad.yaml": experiment("vars: {style: x}\nmodle: {seed: 1}\n")},
        [],
        ["manifests/experiment/bad.yaml", "modle", "unknown key"],
    ),
    "unknown nested key": (
        {
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {dpeth: 0.5, depth: 0.5}}\n"
            )
        },
        [],
        ["manifests/experiment/bad.yaml", "model.weights.dpeth", "unknown key"],
    ),
    "wrong type": (
        {
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {num_steps: many}\n"
            )
        },
        [],
        ["manifests/experiment/bad.yaml", "model.num_steps", "integer"],
    ),
    "wrong type in sweep": (
        {
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
                "sweep: {grid: {model.seed: [1, two]}}\n"
            )
        },
        [],
        ["manifests/experiment/bad.yaml", "sweep.grid.model.seed[1]", "integer"],
    ),
    "unknown sweep key": (
        {
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
                "sweep: {grid: {model.sed: [1, 2]}}\n"
            )
        },
        [],
        ["manifests/experiment/bad.yaml", "sweep.grid.model.sed", "unknown sweep key"],
    ),
    "wrong type on the command line": (
        {
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
            )
        },
        ["model.seed=abc"],
        ["command-line override 'model.seed=abc'", "model.seed"],
    ),
    "missing input file": (
        {
            "manifests/prompts/bad_prompts.yaml": GOOD_PROMPTS.replace(
                "street/color.mp4", "street/nope.mp4"
            ),
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
            ),
        },
        [],
        ["manifests/prompts/bad_prompts.yaml", "prompts.scene.inputs.video", "nope.mp4"],
    ),
    "an input that is not a video": (
        {
            "inputs/notavideo.mp4": "plain text, not a video\n",
            "manifests/prompts/bad_prompts.yaml": GOOD_PROMPTS.replace(
                "inputs/demo/street/depth.mp4", "inputs/notavideo.mp4"
            ),
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
            ),
        },
        [],
        [
            "manifests/prompts/bad_prompts.yaml",
            "prompts.scene.inputs.controls.depth",
            "inputs/notavideo.mp4",
            "not a readable video",
        ],
    ),
    "unknown template variable": (
        {
            "manifests/experiment/bad.yaml": experiment(
                "vars: {stlye: x}\nmodel: {weights: {depth: 0.5}}\n"
            )
        },
        [],
        ["manifests/prompts/bad_prompts.yaml", "prompts.scene.text", "style", "stlye"],
    ),
    "control video without weight": (
        {"manifests/experiment/bad.yaml": experiment("vars: {style: x}\n")},
        [],
        ["prompts.scene.inputs.controls.depth", "model.weights.depth"],
    ),
    "zip lists of different lengths": (
        {
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
                "sweep: {zip: {model.seed: [1, 2, 3], model.weights.depth: [0.1, 0.2]}}\n"
            )
        },
        [],
        ["manifests/experiment/bad.yaml", "sweep.zip", "equal lengths"],
    ),
    "a weight swept to null while the prompt has that control video": (
        {
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
                "sweep: {grid: {model.weights.depth: [0.5, null]}}\n"
            )
        },
        [],
        ["prompts.scene.inputs.controls.depth", "model.weights.depth is not set"],
    ),
    "no control at all": (
        {
            "manifests/prompts/bad_prompts.yaml": GOOD_PROMPTS.replace(
                "    controls:\n      depth: inputs/demo/street/depth.mp4\n", ""
            ),
            "manifests/experiment/bad.yaml": experiment("vars: {style: x}\n"),
        },
        [],
        ["model.weights", "at least one control weight"],
    ),
    "no input video and a low sigma_max": (
        {
            "manifests/prompts/bad_prompts.yaml": GOOD_PROMPTS.replace(
                "    video: inputs/demo/street/color.mp4\n", ""
            ),
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {sigma_max: 70, weights: {depth: 0.5, edge: 0.2}}\n"
            ),
        },
        [],
        ["model.sigma_max", "at least 80", "prompts.scene.inputs.controls.edge"],
    ),
    "an unknown adapter in the second zip row": (
        {
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
                "sweep: {zip: {model.adapter: [simulated, bogus], model.seed: [1, 2]}}\n"
            )
        },
        [],
        ["model.adapter", "unknown adapter 'bogus'"],
    ),
    "more GPUs than the target has": (
        {
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
            )
        },
        ["model.num_gpus=2"],
        ["model.num_gpus", "2 GPUs asked", "'local' has 1"],
    ),
    "a template that reaches for Python internals": (
        {
            "manifests/prompts/bad_prompts.yaml": GOOD_PROMPTS.replace(
                "{{ style }}", "{{ style.__class__.__mro__ }}"
            ),
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
            ),
        },
        [],
        ["prompts.scene.text", "not allowed"],
    ),
    "an unknown variable in the negative prompt": (
        {
            "manifests/prompts/bad_prompts.yaml": GOOD_PROMPTS.replace(
                '  text: "A {{ style }} street"\n',
                '  text: "A {{ style }} street"\n  negative: "no {{ nope }}"\n',
            ),
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
            ),
        },
        [],
        ["manifests/prompts/bad_prompts.yaml", "prompts.scene.negative", "nope"],
    ),
    "a template that fails at render time": (
        {
            "manifests/prompts/bad_prompts.yaml": GOOD_PROMPTS.replace(
                "{{ style }}", "{{ style }} {{ 1 / 0 }}"
            ),
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
            ),
        },
        [],
        ["prompts.scene.text", "ZeroDivisionError"],
    ),
    "a template that would render randomly": (
        {
            "manifests/prompts/bad_prompts.yaml": GOOD_PROMPTS.replace(
                "{{ style }}", "{{ ['a', 'b'] | random }}"
            ),
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
            ),
        },
        [],
        ["prompts.scene.text", "random"],
    ),
    "a swept value the model refuses": (
        {
            "manifests/prompts/bad_prompts.yaml": GOOD_PROMPTS.replace(
                "    video: inputs/demo/street/color.mp4\n", ""
            ),
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
                "sweep: {grid: {model.sigma_max: [90, 70]}}\n"
            ),
        },
        [],
        ["manifests/experiment/bad.yaml: sweep.grid.model.sigma_max", "at least 80"],
    ),
    "too many GPUs in the second sweep point": (
        {
            "manifests/experiment/bad.yaml": experiment(
                "vars: {style: x}\nmodel: {weights: {depth: 0.5}}\n"
                "sweep: {grid: {model.num_gpus: [1, 2]}}\n"
            )
        },
        [],
        ["sweep.grid.model.num_gpus", "2 GPUs asked"],
    ),
}


@pytest.fixture(scope="module")
def used_project(demo_template: Project, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project with outputs already (to prove bad input changes nothing)."""
    from conftest import copy_project

    proj = copy_project(demo_template, tmp_path_factory.mktemp("bad") / "proj")
    proj.write("manifests/prompts/bad_prompts.yaml", GOOD_PROMPTS)
    return proj


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_manifest_is_refused_naming_file_and_key(used_project: Project, case: str) -> None:
    files, args, fragments = CASES[case]
    used_project.write("manifests/prompts/bad_prompts.yaml", GOOD_PROMPTS)
    for relative, text in files.items():
        used_project.write(relative, text)
    before = tree_snapshot(used_project.outputs)
    runs_before = used_project.cosmos_json("list", "runs")

    done = used_project.batch("+experiment=bad", *args)

    assert done.returncode == 2, done.stdout + done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, f"{fragment!r} not in:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) <= 24, "the error does not fit one screen"
    assert tree_snapshot(used_project.outputs) == before
    assert used_project.cosmos_json("list", "runs") == runs_before
    assert len(used_project.ledger_lines()) == 12


def test_bad_input_on_a_fresh_project_creates_no_database_or_outputs(project: Project) -> None:
    project.write(
        "manifests/experiment/bad.yaml",
        "# @package _global_\ndefaults:\n  - /prompts: demo\nname: bad\nmodle: 1\n",
    )
    done = project.batch("+experiment=bad")
    assert done.returncode == 2
    assert "modle" in done.stderr
    assert not project.outputs.exists()


def test_unknown_experiment_names_the_available_ones(project: Project) -> None:
    done = project.batch("+experiment=nope")
    assert done.returncode == 2, done.stderr
    assert "experiment/nope" in done.stderr and "demo" in done.stderr
    assert not project.outputs.exists()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not a url", "not a valid SQLAlchemy URL"),
        ("postgresql+nosuchdriver://u@127.0.0.1/db", "driver"),
        ("postgresql://u@127.0.0.1:notaport/db", "not a valid SQLAlchemy URL"),
    ],
)
def test_a_bad_database_url_is_a_clear_error(project: Project, url: str, fragment: str) -> None:
    done = project.batch("+experiment=demo", f"database.url={url}")
    assert done.returncode == 2, done.stderr
    assert fragment in done.stderr and "Traceback" not in done.stderr
    assert "secret" not in done.stderr
    listed = project.cosmos("list", "runs", env={"COSMOS_DATABASE__URL": url})
    assert listed.returncode == 2 and fragment in listed.stderr
    assert "Traceback" not in listed.stderr


@pytest.mark.parametrize(
    "url",
    ["postgresql://user:hunter2@127.0.0.1/db", "sqlite:////tmp/x.db?password=hunter2"],
)
def test_a_password_on_the_command_line_is_refused_before_anything_is_saved(
    project: Project, url: str
) -> None:
    done = project.batch("-m", "+experiment=demo", f"database.url={url}")
    assert done.returncode == 2, done.stderr
    assert "COSMOS_DATABASE__URL" in done.stderr and "hunter2" not in done.stderr
    assert not project.outputs.exists()
    saved = [
        p for p in project.root.rglob("*") if p.is_file() and "hunter2" in p.read_text("latin-1")
    ]
    assert saved == []


def test_no_experiment_says_how_to_pick_one(project: Project) -> None:
    done = project.batch()
    assert done.returncode == 2
    assert "+experiment=NAME" in done.stderr and "demo" in done.stderr
    assert not project.outputs.exists()
