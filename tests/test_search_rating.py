"""Search, ratings and id lookup in the repository, on SQLite and PostgreSQL.

Real databases (a SQLite file, a fresh PostgreSQL database); time from a
fake clock so that "newest first" is exact.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_database import T0, FakeClock, make_prompt, make_spec

from cosmos_workflow.database.engine import create_db_engine, migrate, session_factory
from cosmos_workflow.database.models import RunStatus
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.errors import NotFoundFailure, ValidationFailure
from cosmos_workflow.manifest.specs import ResolvedPrompt

# Texts chosen so that each LIKE wildcard, the escape character and case
# would give a wrong answer if they were not matched literally.
TEXTS = {
    "percent": "a 50% chance of rain over the harbor",
    "no_percent": "a 50 percent chance of fog",
    "underscore": "snake_case street names",
    "no_underscore": "snakeXcase street names",
    "backslash": "a path like C:\\temp\\frames",
    "no_backslash": "a path like C:/temp/frames",
    "upper": "FOGGY HARBOR AT DAWN",
    "accent": "CAFÉ TERRACE, ÉTÉ",
}


@pytest.fixture
def repo(db_url: str) -> Iterator[tuple[DataRepository, FakeClock]]:
    engine = create_db_engine(db_url)
    migrate(engine)
    clock = FakeClock(T0)
    yield DataRepository(session_factory(engine), clock), clock
    engine.dispose()


def add_prompt(
    repo: DataRepository, clock: FakeClock, text: str, tag: str, negative: str | None = None
) -> ResolvedPrompt:
    """Store a prompt one second after the previous one."""
    prompt = make_prompt(text, tag)
    if negative is not None:
        prompt = ResolvedPrompt(prompt.name, prompt.text, negative, prompt.inputs)
    clock.advance(1)
    assert repo.add_prompts([prompt]) == 1
    return prompt


def add_run(
    repo: DataRepository, clock: FakeClock, prompt: ResolvedPrompt, seed: int, status: RunStatus
) -> str:
    """Store a run one second after the previous one and bring it to ``status``."""
    spec = make_spec(prompt, seed)
    clock.advance(1)
    repo.add_runs([spec])
    path = {
        RunStatus.PENDING: [],
        RunStatus.QUEUED: [RunStatus.QUEUED],
        RunStatus.RUNNING: [RunStatus.QUEUED, RunStatus.RUNNING],
        RunStatus.SUCCEEDED: [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED],
        RunStatus.FAILED: [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.FAILED],
        RunStatus.CANCELLED: [RunStatus.QUEUED, RunStatus.CANCELLED],
    }[status]
    for step in path:
        repo.transition([spec.id], step)
    return spec.id


@pytest.fixture
def texts(repo: tuple[DataRepository, FakeClock]) -> dict[str, str]:
    """One prompt per entry of TEXTS (tags a, b, ...); returns key -> prompt id."""
    store, clock = repo
    return {
        key: add_prompt(store, clock, text, chr(ord("a") + index)).id
        for index, (key, text) in enumerate(TEXTS.items())
    }


def found_prompts(store: DataRepository, text: str) -> set[str]:
    return {p.id for p in store.search(text, 100).prompts}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("%", {"percent"}),
        ("50%", {"percent"}),
        ("_", {"underscore"}),
        ("e_c", {"underscore"}),
        ("\\", {"backslash"}),
        ("C:\\temp", {"backslash"}),
        ("\\%", set()),
        ("%%", set()),
        ("harbor", {"percent", "upper"}),
        ("Harbor", {"percent", "upper"}),
        ("foggy harbor", {"upper"}),
        ("café", {"accent"}),
        ("été", {"accent"}),
        ("50", {"percent", "no_percent"}),
        ("no such words", set()),
    ],
)
def test_search_matches_text_literally_ignoring_case(
    repo: tuple[DataRepository, FakeClock], texts: dict[str, str], query: str, expected: set[str]
) -> None:
    store, _ = repo
    assert found_prompts(store, query) == {texts[key] for key in expected}


def test_search_looks_at_name_and_negative_prompt_and_finds_their_runs(
    repo: tuple[DataRepository, FakeClock],
) -> None:
    store, clock = repo
    by_text = add_prompt(store, clock, "a lighthouse in the storm", "a")
    by_negative = add_prompt(store, clock, "a quiet bay", "b", negative="no lighthouse, blurry")
    by_name = add_prompt(store, clock, "a rocky coast", "c")  # its name is "scene-c"
    other = add_prompt(store, clock, "a desert road", "d")
    runs = {
        prompt.id: [add_run(store, clock, prompt, seed, RunStatus.SUCCEEDED) for seed in (1, 2)]
        for prompt in (by_text, by_negative, by_name, other)
    }

    hits = store.search("LIGHTHOUSE", 100)
    assert [p.id for p in hits.prompts] == [by_negative.id, by_text.id]  # newest first
    assert [r.id for r in hits.runs] == runs[by_negative.id][::-1] + runs[by_text.id][::-1]
    assert (hits.prompts_total, hits.runs_total) == (2, 4)

    named = store.search("scene-c", 100)
    assert [p.id for p in named.prompts] == [by_name.id]
    assert {r.id for r in named.runs} == set(runs[by_name.id])


def test_search_limit_keeps_the_newest_and_counts_them_all(
    repo: tuple[DataRepository, FakeClock],
) -> None:
    store, clock = repo
    prompts = [add_prompt(store, clock, f"harbor number {n}", f"{n}") for n in range(5)]
    run_ids = [add_run(store, clock, prompts[0], seed, RunStatus.SUCCEEDED) for seed in range(4)]

    hits = store.search("harbor", 2)
    assert [p.id for p in hits.prompts] == [prompts[4].id, prompts[3].id]
    assert [r.id for r in hits.runs] == [run_ids[3], run_ids[2]]
    assert (hits.prompts_total, hits.runs_total) == (5, 4)


def test_rating_a_succeeded_run_returns_the_previous_rating_and_can_be_cleared(
    repo: tuple[DataRepository, FakeClock],
) -> None:
    store, clock = repo
    prompt = add_prompt(store, clock, "a harbor", "a")
    run_id = add_run(store, clock, prompt, 1, RunStatus.SUCCEEDED)

    assert store.get_run(run_id).rating is None
    assert store.set_rating(run_id, 4) is None
    assert store.get_run(run_id).rating == 4
    assert store.set_rating(run_id, 2) == 4
    assert store.get_run(run_id).rating == 2
    assert store.set_rating(run_id, None) == 2
    assert store.get_run(run_id).rating is None


@pytest.mark.parametrize(
    "status", [RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.FAILED]
)
def test_only_succeeded_runs_can_be_rated_and_a_refusal_changes_nothing(
    repo: tuple[DataRepository, FakeClock], status: RunStatus
) -> None:
    store, clock = repo
    prompt = add_prompt(store, clock, "a harbor", "a")
    run_id = add_run(store, clock, prompt, 1, status)

    with pytest.raises(ValidationFailure, match=status.value):
        store.set_rating(run_id, 3)
    run = store.get_run(run_id)
    assert (run.rating, run.status) == (None, status)
    assert store.set_rating(run_id, None) is None  # clearing is always allowed
    with pytest.raises(NotFoundFailure):
        store.set_rating("rs_ffffffffffffffff", 3)


def test_runs_are_listed_by_exact_and_minimum_rating(
    repo: tuple[DataRepository, FakeClock],
) -> None:
    store, clock = repo
    prompt = add_prompt(store, clock, "a harbor", "a")
    ratings = [None, 1, 3, 3, 5]
    run_ids = [add_run(store, clock, prompt, seed, RunStatus.SUCCEEDED) for seed in range(5)]
    for run_id, rating in zip(run_ids, ratings, strict=True):
        if rating is not None:
            store.set_rating(run_id, rating)

    def listed(**filters: int) -> list[str]:
        return [r.id for r in store.list_runs(**filters)]

    assert listed(rating=3) == [run_ids[3], run_ids[2]]
    assert listed(rating=2) == []
    assert listed(min_rating=3) == [run_ids[4], run_ids[3], run_ids[2]]
    assert listed(min_rating=1) == run_ids[1:][::-1]
    assert listed(min_rating=3, rating=5) == [run_ids[4]]
    assert listed() == run_ids[::-1]


def test_ids_by_prefix_per_kind_with_labels_and_a_limit(
    repo: tuple[DataRepository, FakeClock],
) -> None:
    store, clock = repo
    first = add_prompt(store, clock, "a harbor", "a")
    second = add_prompt(store, clock, "a forest", "b")
    done = add_run(store, clock, first, 1, RunStatus.SUCCEEDED)
    failed = add_run(store, clock, second, 2, RunStatus.FAILED)
    store.add_sweep("sw_00000000000000aa", "demo", {}, [], "/out/sw", [])

    everything = store.ids_with_prefix("", ("ps", "rs", "sw"), 100)
    assert everything == sorted([(first.id, "scene-a"), (second.id, "scene-b")]) + sorted(
        [(done, "succeeded"), (failed, "failed")]
    ) + [("sw_00000000000000aa", "demo")]
    assert store.ids_with_prefix("rs_", ("ps", "rs", "sw"), 100) == sorted(
        [(done, "succeeded"), (failed, "failed")]
    )
    assert store.ids_with_prefix("r", ("rs",), 100) == store.ids_with_prefix("rs", ("rs",), 100)
    assert store.ids_with_prefix(done[:8], ("rs",), 100) == [
        run for run in everything if run[0].startswith(done[:8])
    ]
    assert store.ids_with_prefix(done, ("ps", "sw"), 100) == []
    assert store.ids_with_prefix("rs%", ("rs",), 100) == []  # % is not a wildcard
    assert store.ids_with_prefix("r__", ("rs",), 100) == []  # nor is _
    assert len(store.ids_with_prefix("", ("ps", "rs", "sw"), 3)) == 3


def test_id_prefixes_treat_percent_and_underscore_literally(
    repo: tuple[DataRepository, FakeClock],
) -> None:
    store, clock = repo
    run_id = add_run(
        store, clock, add_prompt(store, clock, "a harbor", "a"), 1, RunStatus.SUCCEEDED
    )
    assert store.ids_with_prefix(run_id[:5], ("rs",), 100) == [(run_id, "succeeded")]
    assert store.ids_with_prefix("rs_%", ("rs",), 100) == []
    assert store.ids_with_prefix("rs_" + "_" * 4, ("rs",), 100) == []
    assert store.find_ids("rs_%") == [] and store.find_ids("rs_" + "_" * 4) == []
    assert store.find_ids(run_id[:6]) == [run_id]
