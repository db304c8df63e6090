"""Reading a log file that another process is still writing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

POLL_S = 0.2


def tail_lines(
    path: Path,
    on_line: Callable[[str], None],
    keep_going: Callable[[], bool] | None = None,
    poll_s: float = POLL_S,
) -> int:
    """Pass the lines of ``path`` to ``on_line``; wait for more while ``keep_going()``.

    Without ``keep_going`` the file is read once, including an unfinished
    last line. While following, only complete lines are passed on: once
    ``keep_going()`` is false, an unfinished last line is left out (the
    caller reads it from the final copy of the log).

    Returns:
        How many complete lines were passed on.
    """
    delivered = 0
    pending = b""
    with path.open("rb") as handle:
        while True:
            chunk = handle.read()
            if chunk:
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    on_line(line.decode("utf-8", "replace"))
                delivered += len(lines)
            elif keep_going is None or not keep_going():
                break
            else:
                time.sleep(poll_s)
    if pending and keep_going is None:
        on_line(pending.decode("utf-8", "replace"))
    return delivered
