"""Transfer throughput on loopback: FileTransferService against OpenSSH scp.

Headline: our speed divided by scp's with the same cipher
(``scp -c aes128-gcm@openssh.com``, the cipher ours negotiates), upload and
download, for each file size, median of the rounds (target >= 1.0). Stock
scp (chacha20-poly1305, which paramiko does not offer) is shown beside it.

How it is timed:
- Every round times each tool once per size and direction, in an order that
  rotates from round to round, so all see the same load on the machine; the
  figure of a tool is its median time over the rounds.
- Every transfer writes a new file (the previous copy is deleted first,
  untimed); afterwards every file written is checked by size.
- Ours includes its sha256 checks: the host hashes what it sends or what
  landed, we hash what we send or receive. The upload is timed as a sweep
  uploads its inputs: with the sha256 its plan already has (computed once,
  untimed). scp checks nothing.
- Ours reuses one open connection, as a sweep does; each scp opens its own
  (key exchange, login, the remote program), so its figure includes that
  set-up. Each round also times ``ssh ... true`` with the same options and
  cipher, printed as scp's set-up: at 1 MiB it is most of scp's time, so the
  small sizes compare set-up more than the data path.

Figures (ours / scp with the same cipher, median of 3; loopback on a 2-core
machine shared with other jobs, load average 4-11, so each figure moved
between runs; December 2026):

| size | upload | download | runs |
|---|---|---|---|
| 256 MiB | 0.67-1.60 (median 1.40) | 1.08-1.58 (median 1.20) | 7 |
| 64 MiB | 1.48-2.56 | 1.41-2.50 | 4 |
| 1 MiB | 3.3-12 | 8-17 | 4 |

Upload fell below 1.0 in the two runs at load 9-10; the host hashes an
upload after it has landed (about 0.2 s for 256 MiB here). Before the
ChunkBuffer (main at 985f12b, same benchmark, same hours): download at
256 MiB 0.41-0.93 (median 0.57), upload 0.68-2.26. At 64 MiB and below,
scp's set-up (0.2-0.35 s here) is a large share of its time.

    .venv/bin/python benchmarks/transfer.py [--sizes 1,64,256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from sshd import Sshd, start_sshd  # noqa: E402

from cosmos_workflow.connection.remote import RemoteCommandExecutor  # noqa: E402
from cosmos_workflow.connection.ssh import SSHEndpoint, SSHManager  # noqa: E402
from cosmos_workflow.transfer.files import FileTransferService  # noqa: E402

# The cipher ours negotiates with OpenSSH; scp is also timed with it.
MATCHED_CIPHER = "aes128-gcm@openssh.com"
TOOLS = ("scp", "scp gcm", "ours")
DIRECTIONS = ("upload", "download")
# (tool, direction) -> (the transfer, the file it writes)
Cases = dict[tuple[str, str], tuple[Callable[[], object], Path]]


def ssh_options(server: Sshd, cipher: list[str]) -> list[str]:
    """Options for scp and ssh: the test server's key and known_hosts, no prompts."""
    return [*cipher,
        "-i", str(server.client_key), "-q",
        "-o", f"UserKnownHostsFile={server.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
    ]  # fmt: skip


def scp_cases(server: Sshd, source: Path, root: Path, tool: str, cipher: list[str]) -> Cases:
    """The scp upload and download cases of ``tool``."""
    stem = tool.replace(" ", "_")
    far = root / "remote" / f"{stem}.bin"
    back = root / f"{stem}_back.bin"
    options = ["-P", str(server.port), *ssh_options(server, cipher)]
    host = f"{server.user}@{server.host}:"
    return {
        (tool, "upload"): (
            lambda: subprocess.run(["scp", *options, str(source), host + str(far)], check=True),
            far,
        ),
        (tool, "download"): (
            lambda: subprocess.run(["scp", *options, host + str(far), str(back)], check=True),
            back,
        ),
    }


def our_cases(transfer: FileTransferService, source: Path, root: Path) -> Cases:
    """Our upload (with the planned sha256, as a sweep's inputs) and download cases."""
    planned = sha256(source)
    far = root / "remote" / "ours.bin"
    back = root / "ours_back.bin"
    return {
        ("ours", "upload"): (lambda: transfer.upload(source, str(far), expected=planned), far),
        ("ours", "download"): (lambda: transfer.download(str(far), back), back),
    }


def sha256(path: Path) -> str:
    """The sha256 of ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def seconds(action: Callable[[], object], destination: Path) -> float:
    """Time ``action``, which writes ``destination``; an old copy is deleted first, untimed."""
    destination.unlink(missing_ok=True)
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def ssh_true(server: Sshd) -> Callable[[], object]:
    """One ``ssh host true`` with scp's options and the same cipher: scp's set-up alone."""
    argv = ["ssh", "-p", str(server.port), *ssh_options(server, ["-c", MATCHED_CIPHER])]
    return lambda: subprocess.run([*argv, f"{server.user}@{server.host}", "true"], check=True)


def measure_size(
    server: Sshd, transfer: FileTransferService, root: Path, mib: int, repeat: int
) -> dict[tuple[str, str], list[float]]:
    """Seconds of every round of each case, for one file of ``mib`` MiB."""
    root.mkdir()
    (root / "remote").mkdir()
    source = root / "payload.bin"
    with source.open("wb") as handle:
        for _ in range(mib):
            handle.write(os.urandom(1024 * 1024))
    cases = {
        **scp_cases(server, source, root, "scp", []),
        **scp_cases(server, source, root, "scp gcm", ["-c", MATCHED_CIPHER]),
        **our_cases(transfer, source, root),
    }
    times: dict[tuple[str, str], list[float]] = {name: [] for name in cases}
    times["ssh", "setup"] = []
    for number in range(repeat):
        times["ssh", "setup"].append(seconds(ssh_true(server), root / "none"))
        order = TOOLS[number % len(TOOLS) :] + TOOLS[: number % len(TOOLS)]
        for direction in DIRECTIONS:
            for tool in order:
                times[tool, direction].append(seconds(*cases[tool, direction]))
    check_sizes(cases, source.stat().st_size)
    for _, destination in cases.values():
        destination.unlink()
    source.unlink()
    return times


def check_sizes(cases: Cases, size: int) -> None:
    """Exit with a message unless every case's file exists with ``size`` bytes."""
    wrong = {
        name: destination.stat().st_size if destination.exists() else None
        for name, (_, destination) in cases.items()
        if not destination.exists() or destination.stat().st_size != size
    }
    if wrong:
        sys.exit(f"wrong sizes (expected {size} bytes): {wrong}")


def report(mib: int, times: dict[tuple[str, str], list[float]]) -> list[str]:
    """Lines for one size: MB/s of each tool and the ratios."""
    megabytes = mib * 1.048576
    median = {name: statistics.median(values) for name, values in times.items()}
    lines = []
    for direction in DIRECTIONS:
        rates = "  ".join(f"{tool} {megabytes / median[tool, direction]:6.1f}" for tool in TOOLS)
        same = median["scp gcm", direction] / median["ours", direction]
        stock = median["scp", direction] / median["ours", direction]
        lines.append(
            f"{mib:>5} MiB {direction:<8} MB/s: {rates}   "
            f"ours/scp-gcm {same:5.2f}  ours/scp {stock:5.2f}"
        )
    return lines


def headline(mib: int, times: dict[tuple[str, str], list[float]]) -> str:
    """The headline line of one size: ours / scp with the same cipher, both ways."""
    median = {name: statistics.median(values) for name, values in times.items()}
    ratios = "  ".join(
        f"{direction} {median['scp gcm', direction] / median['ours', direction]:4.2f}"
        for direction in DIRECTIONS
    )
    return f"{mib:>5} MiB: {ratios}"


def main() -> None:
    """Parse the options, run the benchmark, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,64,256", help="file sizes in MiB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; figures are medians")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(
        dir=REPO / ".work" if (REPO / ".work").is_dir() else None
    ) as tmp:
        root = Path(tmp).resolve()
        server = start_sshd(root / "sshd")
        try:
            endpoint = SSHEndpoint(
                host=server.host, port=server.port, user=server.user,
                key_file=server.client_key, known_hosts=server.known_hosts,
            )  # fmt: skip
            with SSHManager(endpoint) as ssh:
                transfer = FileTransferService(ssh, RemoteCommandExecutor(ssh))
                results = {
                    mib: measure_size(server, transfer, root / f"{mib}MiB", mib, args.repeat)
                    for mib in sizes
                }
        finally:
            server.stop()
    setup = statistics.median(t for times in results.values() for t in times["ssh", "setup"])
    print(f"loopback, median of {args.repeat} rounds; scp's set-up (ssh true) {setup:.3f} s")
    for mib, times in results.items():
        print("\n".join(report(mib, times)))
    print(f"HEADLINE ours / scp -c {MATCHED_CIPHER} (same cipher), target >= 1.0:")
    for mib, times in results.items():
        print(headline(mib, times))


if __name__ == "__main__":
    main()
