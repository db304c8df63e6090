"""A runner process for the concurrent-claim tests: claims runs in random chunks.

    python claimer.py DATABASE_URL NAME SEED IDS_FILE

Reads the run ids (one per line) from IDS_FILE, shuffles them with SEED,
opens the database, prints ``ready`` and waits for a line on stdin (the
start signal, so that several claimers start at the same moment). Then it
claims every id, in chunks of 1 to 40, with job ids ``jb_NAME_<n>``, and
prints one JSON line: the ids it claimed, the number of claim calls, the
seconds they took and the wall-clock times of its first and last claim.
Any error ends it with a traceback and a non-zero exit.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from cosmos_workflow.database.engine import create_db_engine, session_factory
from cosmos_workflow.services.repository import DataRepository
from cosmos_workflow.utils.clock import SystemClock


def main() -> None:
    url, name, seed, ids_file = sys.argv[1:5]
    ids = Path(ids_file).read_text().split()
    rng = random.Random(int(seed))
    rng.shuffle(ids)
    engine = create_db_engine(url)
    repo = DataRepository(session_factory(engine), SystemClock())
    repo.counts_by_status()  # connected and warm before the start signal
    print("ready", flush=True)
    sys.stdin.readline()

    claimed: list[str] = []
    calls = 0
    first_claim = time.time()
    began = time.monotonic()
    position = 0
    while position < len(ids):
        size = rng.randint(1, 40)
        chunk = ids[position : position + size]
        position += size
        claimed += repo.claim(chunk, target=name, job_id=f"jb_{name}_{calls}")
        calls += 1
    seconds = time.monotonic() - began
    last_claim = time.time()
    engine.dispose()
    report = {
        "claimed": claimed,
        "calls": calls,
        "seconds": seconds,
        "between": [first_claim, last_claim],
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
