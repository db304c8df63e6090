"""Transfer throughput on loopback: OpenSSH scp against FileTransferService.

Starts a throwaway sshd, moves one file each way with both tools, prints
MB/s and the ratio ours/scp (target: >= 0.8 both ways). Ours includes its
sha256 verification on both sides; scp verifies nothing.

    .venv/bin/python benchmarks/transfer.py [--mib 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from sshd import start_sshd  # noqa: E402

from cosmos_workflow.connection.remote import RemoteCommandExecutor  # noqa: E402
from cosmos_workflow.connection.ssh import SSHEndpoint, SSHManager  # noqa: E402
from cosmos_workflow.transfer.files import FileTransferService  # noqa: E402


def best_seconds(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(
        dir=REPO / ".work" if (REPO / ".work").is_dir() else None
    ) as tmp:
        root = Path(tmp)
        server = start_sshd(root / "sshd")
        try:
            source = root / "payload.bin"
            with source.open("wb") as handle:
                for _ in range(args.mib):
                    handle.write(os.urandom(1024 * 1024))
            remote_dir = root / "remote"
            remote_dir.mkdir()
            ssh_opts = [
                "-P", str(server.port), "-i", str(server.client_key), "-q",
                "-o", f"UserKnownHostsFile={server.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            ]  # fmt: skip
            far = f"{server.user}@{server.host}:"

            def scp_up() -> None:
                subprocess.run(
                    ["scp", *ssh_opts, str(source), far + str(remote_dir / "scp.bin")], check=True
                )

            def scp_down() -> None:
                subprocess.run(
                    [
                        "scp",
                        *ssh_opts,
                        far + str(remote_dir / "scp.bin"),
                        str(root / "scp_back.bin"),
                    ],
                    check=True,
                )

            endpoint = SSHEndpoint(
                host=server.host, port=server.port, user=server.user,
                key_file=server.client_key, known_hosts=server.known_hosts,
            )  # fmt: skip
            with SSHManager(endpoint) as ssh:
                transfer = FileTransferService(ssh, RemoteCommandExecutor(ssh))

                def ours_up() -> None:
                    transfer.upload(source, str(remote_dir / "ours.bin"))

                def ours_down() -> None:
                    transfer.download(str(remote_dir / "ours.bin"), root / "ours_back.bin")

                figures = {}
                for name, action in (
                    ("scp upload", scp_up),
                    ("ours upload", ours_up),
                    ("scp download", scp_down),
                    ("ours download", ours_down),
                ):
                    figures[name] = args.mib * 1.048576 / best_seconds(action, args.repeat)
            assert (root / "ours_back.bin").read_bytes() == source.read_bytes()
        finally:
            server.stop()
    print(f"file: {args.mib} MiB, best of {args.repeat}, loopback")
    for name, rate in figures.items():
        print(f"{name:<14} {rate:8.1f} MB/s")
    up = figures["ours upload"] / figures["scp upload"]
    down = figures["ours download"] / figures["scp download"]
    print(f"ratio upload   {up:5.2f} (ours/scp, target >= 0.8)")
    print(f"ratio download {down:5.2f} (ours/scp, target >= 0.8)")


if __name__ == "__main__":
    main()
