"""Transfer throughput on loopback: OpenSSH scp against FileTransferService.

Starts a throwaway sshd, moves one file each way with each tool, prints
MB/s and the ratio ours/scp (target: >= 0.8 both ways). Ours includes its
sha256 verification on both sides; scp verifies nothing. The rounds
alternate between the tools, so all see the same load on the machine, and
every transfer writes a new file (the previous copy is deleted beforehand,
untimed). The figures are the best round of each; every file written is
checked by size afterwards.

The headline ratio is against stock scp, which is what a user runs: it
negotiates chacha20-poly1305, while ours prefers aes128-gcm. A second ratio
is against scp forced to the same cipher (``-c aes128-gcm@openssh.com``).
Each scp figure includes scp's connection set-up (one new SSH connection
per file); ours reuse one open connection, as a sweep does.

    .venv/bin/python benchmarks/transfer.py [--mib 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
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

# name -> (the transfer, the file it writes)
Cases = dict[str, tuple[Callable[[], object], Path]]
# The cipher ours negotiates with OpenSSH; scp is also timed with it.
MATCHED_CIPHER = "aes128-gcm@openssh.com"
# Timed in this order in every round, for each direction.
TOOLS = ("scp", "scp gcm", "ours")


def scp_cases(server: Sshd, source: Path, root: Path, label: str, cipher: list[str]) -> Cases:
    """The scp upload and download cases, named ``<label> upload|download``.

    Args:
        server: The sshd to talk to.
        source: The local file to upload.
        root: Folder for the files written: ``remote/<label>.bin`` and ``<label>_back.bin``.
        label: Name of the cases and their files.
        cipher: Extra scp options choosing the cipher (empty: scp's default).
    """
    far = root / "remote" / f"{label.replace(' ', '_')}.bin"
    back = root / f"{label.replace(' ', '_')}_back.bin"
    options = [*cipher,
        "-P", str(server.port), "-i", str(server.client_key), "-q",
        "-o", f"UserKnownHostsFile={server.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
    ]  # fmt: skip
    host = f"{server.user}@{server.host}:"
    return {
        f"{label} upload": (
            lambda: subprocess.run(["scp", *options, str(source), host + str(far)], check=True),
            far,
        ),
        f"{label} download": (
            lambda: subprocess.run(["scp", *options, host + str(far), str(back)], check=True),
            back,
        ),
    }


def our_cases(transfer: FileTransferService, source: Path, far: Path, back: Path) -> Cases:
    """Our upload and download cases, over the open connection of ``transfer``."""
    return {
        "ours upload": (lambda: transfer.upload(source, str(far)), far),
        "ours download": (lambda: transfer.download(str(far), back), back),
    }


def seconds(action: Callable[[], object], destination: Path) -> float:
    """Time ``action``, which writes ``destination``; an old copy is deleted first, untimed."""
    destination.unlink(missing_ok=True)
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(server: Sshd, root: Path, mib: int, repeat: int) -> dict[str, float]:
    """MB/s of the best round of each case."""
    source = root / "payload.bin"
    with source.open("wb") as handle:
        for _ in range(mib):
            handle.write(os.urandom(1024 * 1024))
    (root / "remote").mkdir()
    endpoint = SSHEndpoint(
        host=server.host, port=server.port, user=server.user,
        key_file=server.client_key, known_hosts=server.known_hosts,
    )  # fmt: skip
    with SSHManager(endpoint) as ssh:
        transfer = FileTransferService(ssh, RemoteCommandExecutor(ssh))
        cases = {
            **scp_cases(server, source, root, "scp", []),
            **scp_cases(server, source, root, "scp gcm", ["-c", MATCHED_CIPHER]),
            **our_cases(transfer, source, root / "remote" / "ours.bin", root / "ours_back.bin"),
        }
        best: dict[str, float] = {}
        for _ in range(repeat):
            for direction in ("upload", "download"):
                for tool in TOOLS:
                    name = f"{tool} {direction}"
                    elapsed = seconds(*cases[name])
                    best[name] = min(best.get(name, elapsed), elapsed)
    check_sizes(cases, source.stat().st_size)
    return {name: mib * 1.048576 / best[name] for name in cases}


def check_sizes(cases: Cases, size: int) -> None:
    """Exit with a message unless every case's file exists with ``size`` bytes."""
    wrong = {
        name: destination.stat().st_size if destination.exists() else None
        for name, (_, destination) in cases.items()
        if not destination.exists() or destination.stat().st_size != size
    }
    if wrong:
        sys.exit(f"wrong sizes (expected {size} bytes): {wrong}")


def main() -> None:
    """Parse the options, run the benchmark, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(
        dir=REPO / ".work" if (REPO / ".work").is_dir() else None
    ) as tmp:
        server = start_sshd(Path(tmp) / "sshd")
        try:
            figures = measure(server, Path(tmp), args.mib, args.repeat)
        finally:
            server.stop()
    print(f"file: {args.mib} MiB, best of {args.repeat}, loopback")
    for name, rate in figures.items():
        print(f"{name:<17} {rate:8.1f} MB/s")
    for direction in ("upload", "download"):
        ratio = figures[f"ours {direction}"] / figures[f"scp {direction}"]
        print(f"ratio {direction:<8} {ratio:5.2f} (ours/scp, target >= 0.8)")
    for direction in ("upload", "download"):
        ratio = figures[f"ours {direction}"] / figures[f"scp gcm {direction}"]
        print(f"ratio {direction:<8} {ratio:5.2f} (ours/scp -c {MATCHED_CIPHER}, same cipher)")


if __name__ == "__main__":
    main()
