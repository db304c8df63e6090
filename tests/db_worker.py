"""A runner process for the concurrency tests: claims or submits runs in random chunks.

    python db_worker.py claim DATABASE_URL NAME SEED IDS_FILE
    python db_worker.py submit DATABASE_URL NAME SEED PROMPTS SEEDS

It opens the database, prints ``ready`` and waits for a line on stdin (the
start signal, so that several workers start at the same moment), then works
through its items in an order shuffled by SEED, in chunks of 1 to 40:

- ``claim``: claims the run ids listed in IDS_FILE (one per line), with job
  ids ``jb_NAME_<n>`` and target NAME, pausing up to 5 ms between claims;
- ``submit``: adds the runs of PROMPTS prompts x SEEDS seeds (the same runs
  for every worker), with their prompts and a link to one sweep, as
  ``cosmos-batch`` does, then queues them.

It prints one JSON line: what it claimed (``claimed``) or how many prompts
and sweeps it created (``new_prompts``, ``new_sweeps``), the number of calls,
their seconds and the wall-clock times of its first and last call. Any error
ends it with a traceback and a non-zero exit.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from test_database import make_prompt, make_spec

from cosmos_workflow.database.engine import create_db_engine, session_factory
from cosmos_workflow.database.models import RunStatus
from cosmos_workflow.database.repository import DataRepository
from cosmos_workflow.utils.clock import SystemClock

SWEEP_ID = "sw_00000000000000aa"


def chunks(items: list, rng: random.Random) -> list[list]:
    found, position = [], 0
    while position < len(items):
        size = rng.randint(1, 40)
        found.append(items[position : position + size])
        position += size
    return found


def claim(repo: DataRepository, name: str, rng: random.Random, ids_file: str) -> dict[str, Any]:
    ids = Path(ids_file).read_text().split()
    rng.shuffle(ids)
    claimed: list[str] = []
    parts = chunks(ids, rng)
    for number, chunk in enumerate(parts):
        claimed += repo.claim(chunk, target=name, job_id=f"jb_{name}_{number}")
        time.sleep(rng.uniform(0, 0.005))  # a runner does other work between claims
    return {"claimed": claimed, "calls": len(parts)}


def submit(repo: DataRepository, rng: random.Random, prompts: str, seeds: str) -> dict[str, Any]:
    made = [make_prompt(f"prompt {n}") for n in range(int(prompts))]
    specs = [make_spec(prompt, seed) for prompt in made for seed in range(int(seeds))]
    rng.shuffle(specs)
    new_prompts = new_sweeps = 0
    parts = chunks(specs, rng)
    for chunk in parts:
        new_prompts += repo.add_prompts(spec.prompt for spec in chunk)
        repo.add_runs(chunk)
        new_sweeps += repo.add_sweep(SWEEP_ID, "shared", {}, [], "/o/shared", chunk)
        repo.transition([spec.id for spec in chunk], RunStatus.QUEUED)
    return {"new_prompts": new_prompts, "new_sweeps": new_sweeps, "calls": len(parts)}


def main() -> None:
    mode, url, name, seed, *rest = sys.argv[1:]
    rng = random.Random(int(seed))
    engine = create_db_engine(url)
    repo = DataRepository(session_factory(engine), SystemClock())
    repo.counts_by_status()  # connected and warm before the start signal
    print("ready", flush=True)
    sys.stdin.readline()

    first_call = time.time()
    began = time.monotonic()
    report = claim(repo, name, rng, *rest) if mode == "claim" else submit(repo, rng, *rest)
    report["seconds"] = time.monotonic() - began
    report["between"] = [first_call, time.time()]
    engine.dispose()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
