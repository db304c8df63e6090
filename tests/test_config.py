"""ConfigManager: defaults < user TOML file < COSMOS_* environment < Hydra config.

Everything runs in-process on real files under tmp_path; the environment is
a plain dict handed to ConfigManager, so the test process's own variables
never leak in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from cosmos_workflow.config.manager import ConfigManager
from cosmos_workflow.config.project import ProjectPaths, find_project
from cosmos_workflow.config.settings import Settings
from cosmos_workflow.errors import ValidationFailure

# ---------------------------------------------------------------- helpers


def make_project_dir(root: Path) -> ProjectPaths:
    """A folder that looks like a project: conf/config.yaml and manifests/."""
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "config.yaml").write_text("dry_run: false\n", encoding="utf-8")
    (root / "manifests").mkdir()
    return ProjectPaths(root)


@pytest.fixture
def proj(tmp_path: Path) -> ProjectPaths:
    return make_project_dir(tmp_path / "proj")


@pytest.fixture
def xdg(tmp_path: Path) -> Path:
    """An XDG_CONFIG_HOME with no config file in it yet."""
    folder = tmp_path / "xdg"
    folder.mkdir()
    return folder


def xdg_file(xdg: Path, text: str) -> Path:
    path = xdg / "cosmos-workflow" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def settings_of(
    proj: ProjectPaths, env: dict[str, str], composed: dict[str, Any] | None = None
) -> Settings:
    return ConfigManager(proj, env).settings(composed)


TOML = """\
log_level = "DEBUG"

[simulator]
per_video_s = 1.5
model_load_s = 0.75
ledger = "from-toml.jsonl"

[database]
url = "sqlite:////toml/db.sqlite"

[paths]
outputs = "toml-out"
"""


# ---------------------------------------------------------------- precedence


def test_defaults_when_no_layer_sets_anything(proj: ProjectPaths, xdg: Path) -> None:
    s = settings_of(proj, {"XDG_CONFIG_HOME": str(xdg)})
    assert s.project_dir == proj.root
    assert s.simulator.per_video_s == 0.05
    assert s.simulator.model_load_s == 0.2
    assert s.simulator.ledger is None
    assert s.log_level == "INFO"
    assert s.target.name == "local"


def test_user_file_beats_defaults(proj: ProjectPaths, xdg: Path) -> None:
    xdg_file(xdg, TOML)
    s = settings_of(proj, {"XDG_CONFIG_HOME": str(xdg)})
    assert s.simulator.per_video_s == 1.5
    assert s.simulator.model_load_s == 0.75
    assert s.simulator.ledger == "from-toml.jsonl"
    assert s.log_level == "DEBUG"
    assert s.database_url == "sqlite:////toml/db.sqlite"
    assert s.outputs_dir == proj.root / "toml-out"
    # Keys the file does not set keep their defaults.
    assert s.simulator.fail_on_seed is None


def test_cosmos_config_names_the_file_and_beats_the_xdg_file(
    proj: ProjectPaths, xdg: Path, tmp_path: Path
) -> None:
    xdg_file(xdg, "[simulator]\nper_video_s = 1.5\nmodel_load_s = 0.75\n")
    chosen = tmp_path / "elsewhere" / "my.toml"
    chosen.parent.mkdir()
    chosen.write_text("[simulator]\nper_video_s = 9.0\n", encoding="utf-8")
    s = settings_of(proj, {"XDG_CONFIG_HOME": str(xdg), "COSMOS_CONFIG": str(chosen)})
    assert s.simulator.per_video_s == 9.0
    # The XDG file is not read at all when COSMOS_CONFIG names another file.
    assert s.simulator.model_load_s == 0.2


def test_environment_beats_user_file_per_key(proj: ProjectPaths, xdg: Path) -> None:
    xdg_file(xdg, TOML)
    env = {
        "XDG_CONFIG_HOME": str(xdg),
        "COSMOS_SIMULATOR__PER_VIDEO_S": "2.5",
        "COSMOS_DATABASE__URL": "sqlite:////env/db.sqlite",
        "COSMOS_LOG_LEVEL": "ERROR",
    }
    s = settings_of(proj, env)
    assert s.simulator.per_video_s == 2.5
    assert s.database_url == "sqlite:////env/db.sqlite"
    assert s.log_level == "ERROR"
    # Same section, key not in the environment: the file still wins over defaults.
    assert s.simulator.model_load_s == 0.75
    assert s.simulator.ledger == "from-toml.jsonl"
    assert s.outputs_dir == proj.root / "toml-out"


def test_composed_config_beats_environment_and_none_falls_through(
    proj: ProjectPaths, xdg: Path
) -> None:
    xdg_file(xdg, TOML)
    env = {
        "XDG_CONFIG_HOME": str(xdg),
        "COSMOS_SIMULATOR__PER_VIDEO_S": "2.5",
        "COSMOS_SIMULATOR__MODEL_LOAD_S": "0.3",
        "COSMOS_LOG_LEVEL": "ERROR",
        "COSMOS_PATHS__OUTPUTS": "env-out",
    }
    composed = {
        "simulator": {
            "per_video_s": 3.5,  # beats the environment
            "model_load_s": None,  # not set here: the environment shows
            "ledger": None,  # not set here nor in env: the file shows
            "fail_on_seed": 7,  # only set here
        },
        "log_level": None,
        "paths": {"outputs": None},
        "database": {"url": "sqlite:////hydra/db.sqlite"},
        "dry_run": True,
        # Manifest keys of the composed config are not settings.
        "name": "demo",
        "model": {"adapter": "simulated", "seed": 3},
        "sweep": {"grid": {"model.seed": [1, 2]}},
    }
    s = settings_of(proj, env, composed)
    assert s.simulator.per_video_s == 3.5
    assert s.simulator.model_load_s == 0.3
    assert s.simulator.ledger == "from-toml.jsonl"
    assert s.simulator.fail_on_seed == 7
    assert s.log_level == "ERROR"
    assert s.outputs_dir == proj.root / "env-out"
    assert s.database_url == "sqlite:////hydra/db.sqlite"
    assert s.dry_run is True


def test_composed_log_level_beats_environment(proj: ProjectPaths, xdg: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(xdg), "COSMOS_LOG_LEVEL": "ERROR"}
    assert settings_of(proj, env, {"log_level": "WARNING"}).log_level == "WARNING"


def test_composed_target_replaces_the_default(proj: ProjectPaths, xdg: Path) -> None:
    composed = {"target": {"name": "bench", "kind": "local", "gpus": [0, 1, 3]}}
    s = settings_of(proj, {"XDG_CONFIG_HOME": str(xdg)}, composed)
    assert s.target.name == "bench"
    assert s.target.gpus == [0, 1, 3]


def test_other_cosmos_variables_are_not_settings(proj: ProjectPaths, xdg: Path) -> None:
    env = {
        "XDG_CONFIG_HOME": str(xdg),
        "COSMOS_PROJECT_DIR": str(proj.root),
        "COSMOS_SIMULATOR__PER_VIDEO_S": "0.5",
        "NOT_COSMOS_LOG_LEVEL": "garbage",
        "SIMULATOR__PER_VIDEO_S": "garbage",
    }
    s = settings_of(proj, env)
    assert s.simulator.per_video_s == 0.5
    assert s.log_level == "INFO"


# ---------------------------------------------------------------- paths and database


def test_default_database_is_sqlite_in_the_project_outputs(proj: ProjectPaths, xdg: Path) -> None:
    s = settings_of(proj, {"XDG_CONFIG_HOME": str(xdg)})
    assert s.outputs_dir == proj.root / "outputs"
    url = make_url(s.database_url)
    assert url.get_backend_name() == "sqlite"
    assert Path(url.database) == proj.root / "outputs" / "cosmos.db"


def test_relative_outputs_resolve_against_the_project_and_carry_the_database(
    proj: ProjectPaths, xdg: Path, tmp_path: Path
) -> None:
    s = settings_of(proj, {"XDG_CONFIG_HOME": str(xdg)}, {"paths": {"outputs": "runs/out"}})
    assert s.outputs_dir == proj.root / "runs" / "out"
    assert Path(make_url(s.database_url).database) == proj.root / "runs" / "out" / "cosmos.db"

    absolute = tmp_path / "abs-out"
    s = settings_of(proj, {"XDG_CONFIG_HOME": str(xdg), "COSMOS_PATHS__OUTPUTS": str(absolute)})
    assert s.outputs_dir == absolute
    assert Path(make_url(s.database_url).database) == absolute / "cosmos.db"


def test_explicit_database_url_wins_over_the_outputs_location(
    proj: ProjectPaths, xdg: Path
) -> None:
    env = {
        "XDG_CONFIG_HOME": str(xdg),
        "COSMOS_DATABASE__URL": "postgresql://u@db.example/cosmos",
        "COSMOS_PATHS__OUTPUTS": "elsewhere",
    }
    s = settings_of(proj, env)
    assert s.database_url == "postgresql://u@db.example/cosmos"
    assert s.outputs_dir == proj.root / "elsewhere"


# ---------------------------------------------------------------- errors


def assert_validation_failure(exc: BaseException, *fragments: str) -> None:
    assert isinstance(exc, ValidationFailure)
    assert exc.exit_code == 2
    message = str(exc)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_bad_environment_value_names_key_and_source(proj: ProjectPaths, xdg: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(xdg), "COSMOS_SIMULATOR__PER_VIDEO_S": "fast"}
    with pytest.raises(ValidationFailure) as info:
        settings_of(proj, env)
    assert_validation_failure(info.value, "simulator.per_video_s", "environment")


def test_bad_log_level_in_environment_names_it(proj: ProjectPaths, xdg: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(xdg), "COSMOS_LOG_LEVEL": "LOUD"}
    with pytest.raises(ValidationFailure) as info:
        settings_of(proj, env)
    assert_validation_failure(info.value, "log_level", "environment")


def test_unknown_key_under_a_known_env_section_is_an_error(proj: ProjectPaths, xdg: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(xdg), "COSMOS_SIMULATOR__PER_VIDOE_S": "1"}
    with pytest.raises(ValidationFailure) as info:
        settings_of(proj, env)
    assert_validation_failure(info.value, "simulator.per_vidoe_s", "environment")


def test_bad_value_in_user_file_names_key_and_file(proj: ProjectPaths, xdg: Path) -> None:
    path = xdg_file(xdg, "[simulator]\nper_video_s = -1.0\n")
    with pytest.raises(ValidationFailure) as info:
        settings_of(proj, {"XDG_CONFIG_HOME": str(xdg)})
    assert_validation_failure(info.value, "simulator.per_video_s", str(path))


def test_bad_value_in_composed_config_names_key_and_hydra(proj: ProjectPaths, xdg: Path) -> None:
    # A good value in the environment does not hide the bad composed value.
    env = {"XDG_CONFIG_HOME": str(xdg), "COSMOS_SIMULATOR__MODEL_LOAD_S": "1"}
    with pytest.raises(ValidationFailure) as info:
        settings_of(proj, env, {"simulator": {"model_load_s": "slow"}})
    assert_validation_failure(info.value, "simulator.model_load_s", "Hydra")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("colour = 1\n", "colour"),
        ("[simulator]\nspeed = 1.0\n", "simulator.speed"),
    ],
)
def test_unknown_key_in_user_file_is_an_error(
    proj: ProjectPaths, xdg: Path, text: str, key: str
) -> None:
    path = xdg_file(xdg, text)
    with pytest.raises(ValidationFailure) as info:
        settings_of(proj, {"XDG_CONFIG_HOME": str(xdg)})
    assert_validation_failure(info.value, key, str(path))


def test_malformed_user_file_names_the_file(proj: ProjectPaths, xdg: Path) -> None:
    path = xdg_file(xdg, "[simulator\nper_video_s = \n")
    with pytest.raises(ValidationFailure) as info:
        settings_of(proj, {"XDG_CONFIG_HOME": str(xdg)})
    assert_validation_failure(info.value, str(path))


def test_cosmos_config_pointing_at_a_missing_file_is_an_error(
    proj: ProjectPaths, xdg: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nope" / "config.toml"
    env = {"XDG_CONFIG_HOME": str(xdg), "COSMOS_CONFIG": str(missing)}
    with pytest.raises(ValidationFailure) as info:
        settings_of(proj, env)
    assert_validation_failure(info.value, "COSMOS_CONFIG", str(missing))


def test_missing_default_user_file_is_fine(proj: ProjectPaths, tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "does-not-exist")}
    assert settings_of(proj, env).simulator.per_video_s == 0.05


# ---------------------------------------------------------------- find_project


def test_find_project_from_nested_folder(tmp_path: Path) -> None:
    root = make_project_dir(tmp_path / "proj").root
    nested = root / "inputs" / "demo" / "forest"
    nested.mkdir(parents=True)
    assert find_project(nested, {}).root.resolve() == root.resolve()
    assert find_project(root, {}).root.resolve() == root.resolve()


def test_project_dir_variable_wins_over_cwd(tmp_path: Path) -> None:
    here = make_project_dir(tmp_path / "here").root
    there = make_project_dir(tmp_path / "there").root
    found = find_project(here / "manifests", {"COSMOS_PROJECT_DIR": str(there)})
    assert found.root.resolve() == there.resolve()


def test_no_project_raises_a_helpful_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty" / "sub"
    empty.mkdir(parents=True)
    # A conf/ folder without config.yaml is not a project either.
    (tmp_path / "empty" / "conf").mkdir()
    with pytest.raises(ValidationFailure) as info:
        find_project(empty, {})
    assert_validation_failure(info.value, "conf/config.yaml", "COSMOS_PROJECT_DIR")


def test_project_dir_variable_pointing_at_a_non_project_raises(tmp_path: Path) -> None:
    real = make_project_dir(tmp_path / "real").root
    bogus = tmp_path / "bogus"
    bogus.mkdir()
    with pytest.raises(ValidationFailure) as info:
        find_project(real, {"COSMOS_PROJECT_DIR": str(bogus)})
    assert_validation_failure(info.value, "COSMOS_PROJECT_DIR", "conf/config.yaml")


# ---------------------------------------------------------------- adapter set-up
def test_adapter_settings_merge_key_by_key_and_nulls_fall_through(
    proj: ProjectPaths, xdg: Path
) -> None:
    composed = {
        "adapters": {
            "transfer1": {
                "workspace": "/opt/ct1",
                "checkpoint_dir": None,
                "max_batch_size": None,
                "extra_args": ["--offload_text_encoder_model"],
            },
            "transfer2_5": {"workspace": None, "max_batch_size": 2, "extra_args": None},
        }
    }
    s = settings_of(proj, {"XDG_CONFIG_HOME": str(xdg)}, composed)
    assert s.adapters.transfer1.workspace == "/opt/ct1"
    assert s.adapters.transfer1.checkpoint_dir == "checkpoints"
    assert s.adapters.transfer1.max_batch_size == 8
    assert s.adapters.transfer1.extra_args == ["--offload_text_encoder_model"]
    assert s.adapters.transfer2_5.workspace == "/workspace"
    assert s.adapters.transfer2_5.max_batch_size == 2


def test_bad_nested_adapter_value_names_its_whole_key(proj: ProjectPaths, xdg: Path) -> None:
    with pytest.raises(ValidationFailure) as info:
        settings_of(
            proj, {"XDG_CONFIG_HOME": str(xdg)}, {"adapters": {"transfer1": {"max_batch_size": 0}}}
        )
    assert_validation_failure(info.value, "adapters.transfer1.max_batch_size", "Hydra")
