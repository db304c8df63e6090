"""What the rules against bad input still let through, and how each limit is raised.

tests/test_bad_input_corpus.py shows every bad input refused alike; here:
tracebacks on request, swept lists replaced from the command line, the
limits' settings, the interpolation rule, templates that stay allowed, and
YAML that is unusual but sound.
"""

from __future__ import annotations

import re
import time

import pytest
from conftest import Project

from cosmos_workflow.manifest.templates import PromptRenderer, TemplateProblem

HEADER = "# @package _global_\n"
BAD = "manifests/experiment/bad.yaml"


def run_lines(stdout: str) -> list[str]:
    """The run lines of a dry run's plan."""
    return [line for line in stdout.splitlines() if line.strip().startswith("rs_")]


def run_ids(stdout: str) -> list[str]:
    return [line.split()[0] for line in run_lines(stdout)]


# -- tracebacks on request -------------------------------------------------------------


def test_hydra_full_error_shows_the_traceback_above_the_one_message(project: Project) -> None:
    project.write(BAD, HEADER + "model: {seed: 1\n")
    quiet = project.batch("+experiment=bad")
    loud = project.batch("+experiment=bad", env={"HYDRA_FULL_ERROR": "1"})
    assert quiet.returncode == loud.returncode == 2
    assert "Traceback" not in quiet.stderr and "Traceback" in loud.stderr
    assert loud.stderr.splitlines()[-1] == quiet.stderr.splitlines()[-1]
    assert "bad.yaml, line 3" in quiet.stderr


def test_hydra_full_error_shows_the_traceback_of_a_manifest_problem(project: Project) -> None:
    done = project.batch("+experiment=demo", "model.seed=abc", env={"HYDRA_FULL_ERROR": "1"})
    assert done.returncode == 2
    assert "Traceback" in done.stderr and "model.seed" in done.stderr.splitlines()[-1]


def test_cosmos_debug_shows_the_traceback(project: Project) -> None:
    quiet = project.cosmos("inference", "ps_0", "--set", "model.num_step=3")
    loud = project.cosmos("--debug", "inference", "ps_0", "--set", "model.num_step=3")
    assert quiet.returncode == loud.returncode == 2
    assert "Traceback" not in quiet.stderr and "Traceback" in loud.stderr
    assert "did you mean model.num_steps" in quiet.stderr


# -- a swept list from the command line ---------------------------------------------------


def test_a_swept_list_is_replaced_from_the_command_line(project: Project) -> None:
    done = project.batch("+experiment=demo", "dry_run=true", "sweep.grid.model.seed=[1,3]")
    assert done.returncode == 0, done.stderr
    lines = run_lines(done.stdout)
    assert len(lines) == 12
    assert {re.search(r"model\.seed=(\d+)", line).group(1) for line in lines} == {"1", "3"}


def test_a_swept_list_is_added_and_removed_from_the_command_line(project: Project) -> None:
    added = project.batch("+experiment=demo", "dry_run=true", "sweep.grid.model.guidance=[4,6]")
    removed = project.batch("+experiment=demo", "dry_run=true", "~sweep.grid.model.seed")
    assert added.returncode == removed.returncode == 0, added.stderr + removed.stderr
    assert len(run_lines(added.stdout)) == 24
    assert len(run_lines(removed.stdout)) == 6
    assert all("model.seed" not in line for line in run_lines(removed.stdout))


def test_a_swept_list_replaced_gives_the_runs_the_manifest_would(project: Project) -> None:
    """sweep.grid.model.seed=[1] from the command line = a manifest that sweeps seed [1]."""
    by_override = project.batch("+experiment=demo", "dry_run=true", "sweep.grid.model.seed=[1]")
    demo = (project.root / "manifests/experiment/demo.yaml").read_text()
    project.write(BAD, demo.replace("model.seed: [1, 2]", "model.seed: [1]"))
    by_file = project.batch("+experiment=bad", "dry_run=true", "name=demo")
    assert by_override.returncode == by_file.returncode == 0
    assert run_ids(by_override.stdout) == run_ids(by_file.stdout)


def test_a_swept_list_in_a_multirun_applies_to_every_job(project: Project) -> None:
    done = project.batch(
        "-m", "+experiment=demo", "dry_run=true", "sweep.grid.model.seed=[5]", "model.guidance=4,6"
    )
    assert done.returncode == 0, done.stderr
    lines = run_lines(done.stdout)
    assert len(lines) == 12 and all("model.seed=5" in line for line in lines)


def test_the_swept_list_override_is_stored_with_the_sweep(project: Project) -> None:
    done = project.batch("+experiment=demo", "sweep.grid.model.seed=[9]")
    assert done.returncode == 0, done.stderr
    [saved] = project.outputs.glob("sweeps/*/overrides.yaml")
    assert "sweep.grid.model.seed=[9]" in saved.read_text()


# -- limits and their settings ---------------------------------------------------------------


def test_a_sweep_above_max_runs_runs_when_confirmed_or_when_the_limit_is_raised(
    project: Project,
) -> None:
    few = {"COSMOS_LIMITS__MAX_RUNS": "10"}
    refused = project.batch("+experiment=demo", "dry_run=true", env=few)
    confirmed = project.batch("+experiment=demo", "dry_run=true", "confirm_runs=12", env=few)
    raised = project.batch("+experiment=demo", "dry_run=true", "limits.max_runs=12", env=few)
    assert refused.returncode == 2 and "confirm_runs=12" in refused.stderr
    assert "12 runs (2 prompts x 6 sweep points)" in refused.stderr
    assert confirmed.returncode == raised.returncode == 0
    assert len(run_lines(confirmed.stdout)) == len(run_lines(raised.stdout)) == 12


def test_a_multirun_above_max_runs_runs_when_confirmed(project: Project) -> None:
    done = project.batch(
        "-m",
        "+experiment=demo",
        "dry_run=true",
        "model.guidance=range(1,4)",
        "confirm_runs=12",
        env={"COSMOS_LIMITS__MAX_RUNS": "2"},
    )
    assert done.returncode == 0, done.stderr
    assert len(run_lines(done.stdout)) == 36


def test_a_long_prompt_passes_with_a_higher_prompt_limit(project: Project) -> None:
    text = "x" * 10_000
    project.write(
        "manifests/prompts/long.yaml",
        f"scene:\n  text: {text}\n  inputs:\n    video: inputs/demo/street/color.mp4\n",
    )
    project.write(
        BAD,
        HEADER + "defaults:\n  - /prompts: long\nname: long\nmodel: {weights: {vis: 0.5}}\n",
    )
    refused = project.batch("+experiment=bad", "dry_run=true")
    allowed = project.batch("+experiment=bad", "dry_run=true", "limits.prompt_chars=10000")
    assert refused.returncode == 2 and "10000 characters" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("COSMOS_LIMITS__YAML_BYTES", "200", "limits.yaml_bytes"),
        ("COSMOS_LIMITS__YAML_NODES", "20", "limits.yaml_nodes"),
    ],
)
def test_the_yaml_limits_are_set_in_the_environment(
    project: Project, variable: str, value: str, fragment: str
) -> None:
    done = project.batch("+experiment=demo", "dry_run=true", env={variable: value})
    assert done.returncode == 2 and fragment in done.stderr
    assert "manifests/" in done.stderr or "conf/" in done.stderr
    user_file = project.root / ".config" / "cosmos-workflow" / "config.toml"
    user_file.parent.mkdir(parents=True, exist_ok=True)
    user_file.write_text(f"[limits]\n{fragment.split('.')[1]} = {value}\n")
    from_file = project.batch("+experiment=demo", "dry_run=true")
    assert from_file.returncode == 2 and fragment in from_file.stderr


def test_a_big_sweep_is_refused_without_planning_it(project: Project) -> None:
    seeds = ", ".join(str(n) for n in range(2000))
    project.write(
        BAD,
        HEADER + "defaults:\n  - /prompts: demo\nname: big\nvars: {style: x}\n"
        f"model: {{weights: {{depth: 0.5}}}}\nsweep: {{grid: {{model.seed: [{seeds}], "
        f"vars.n: [{seeds}]}}}}\n",
    )
    started = time.monotonic()
    done = project.batch("+experiment=bad", "dry_run=true")
    assert done.returncode == 2 and "8000000 runs" in done.stderr
    # Planning 8 million runs takes minutes; refusing them, a start-up (even on a busy machine).
    assert time.monotonic() - started < 20


# -- the interpolation rule -------------------------------------------------------------


def test_an_escaped_interpolation_is_literal_prompt_text(project: Project) -> None:
    project.write(
        "manifests/prompts/dollar.yaml",
        "scene:\n  text: 'costs \\${price}'\n  inputs:\n    video: inputs/demo/street/color.mp4\n",
    )
    project.write(
        BAD, HEADER + "defaults:\n  - /prompts: dollar\nname: d\nmodel: {weights: {vis: 0.5}}\n"
    )
    done = project.batch("+experiment=bad")
    assert done.returncode == 0, done.stderr
    [prompt] = project.cosmos_json("list", "prompts")
    assert prompt["text"] == "costs ${price}"


def test_a_reference_to_another_key_is_resolved_once(project: Project) -> None:
    """``${vars.steps}`` outside prompt text is resolved when composed: the same runs."""
    demo = (project.root / "manifests/experiment/demo.yaml").read_text()
    project.write(
        BAD,
        demo.replace("num_steps: 35", "num_steps: ${vars.steps}").replace(
            "style: golden-hour", "style: golden-hour\n  steps: 35"
        ),
    )
    by_reference = project.batch("+experiment=bad", "dry_run=true", "name=demo")
    literal = project.batch("+experiment=demo", "dry_run=true")
    assert by_reference.returncode == 0, by_reference.stderr
    assert run_ids(by_reference.stdout) == run_ids(literal.stdout)


# -- templates that stay allowed ------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% for c in ['a', 'b'] %}{{ c | upper }}{% endfor %}", "AB"),
        ("{{ '%05.1f' % 3.14159 }}", "003.1"),
        ("{{ '{:>4}'.format('x') }}", "   x"),
        ("{{ style | center(9) }}", "   gold  "),
        ("{{ 2 ** 10 }} {{ [1, 2] * 2 }}", "1024 [1, 2, 1, 2]"),
        ("{% macro t(x) %}<{{ x }}>{% endmacro %}{{ t(style) }}", "<gold>"),
        ("{% for i in range(3) %}{{ loop.index }}{% endfor %}", "123"),
        ("{{ style ~ '!' * 3 }}", "gold!!!"),
    ],
)
def test_ordinary_templates_render(template: str, expected: str) -> None:
    assert PromptRenderer(100).render(template, {"style": "gold"}) == expected


def test_a_template_may_render_exactly_the_limit() -> None:
    assert PromptRenderer(10).render("{{ 'x' * 10 }}", {}) == "x" * 10
    with pytest.raises(TemplateProblem, match=r"limits\.prompt_chars"):
        PromptRenderer(10).render("{{ 'x' * 11 }}", {})
    with pytest.raises(TemplateProblem, match=r"limits\.prompt_chars"):
        PromptRenderer(10).render("{% for i in range(11) %}x{% endfor %}", {})


# -- unusual but sound YAML ------------------------------------------------------------------


def test_a_manifest_with_a_byte_order_mark_and_blank_lines_above_its_header(
    project: Project,
) -> None:
    demo = (project.root / "manifests/experiment/demo.yaml").read_bytes()
    (project.root / BAD).write_bytes(b"\xef\xbb\xbf\n\n" + demo)
    done = project.batch("+experiment=bad", "dry_run=true")
    assert done.returncode == 0, done.stderr
    assert len(run_lines(done.stdout)) == 12


def test_anchors_and_merge_keys_are_fine(project: Project) -> None:
    project.write(
        BAD,
        HEADER + "defaults:\n  - /prompts: demo\nname: anchors\nvars: {style: x}\n"
        "base: &base {weights: {depth: 0.5}, num_steps: 30}\n"
        "model:\n  <<: *base\n  seed: 3\n",
    )
    done = project.batch("+experiment=bad", "dry_run=true", "~base")
    assert done.returncode == 0, done.stderr
    assert len(run_lines(done.stdout)) == 2


def test_a_saved_manifest_copied_back_runs_the_same_runs(project: Project) -> None:
    first = project.batch("+experiment=demo")
    assert first.returncode == 0, first.stderr
    [saved] = project.outputs.glob("sweeps/*/manifest.yaml")
    project.write("manifests/experiment/again.yaml", saved.read_text())
    again = project.batch("+experiment=again", "dry_run=true")
    assert again.returncode == 0, again.stderr
    assert "12 runs, 12 cached, 0 to run" in again.stdout
