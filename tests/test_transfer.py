"""FileTransferService against a real sshd: verified, atomic, cached."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from paramiko import Channel
from sshd import Sshd, start_sshd

from cosmos_workflow.connection.remote import RemoteCommandExecutor
from cosmos_workflow.connection.ssh import SSHEndpoint, SSHManager
from cosmos_workflow.errors import ExecutionFailure, NetworkFailure
from cosmos_workflow.manifest.specs import InputFile
from cosmos_workflow.transfer.files import ChecksumMismatch, FileTransferService

NAMES = ["plain.bin", "with space.bin", 'it\'s "quoted".bin', "$(touch x).bin", "\u00e9t\u00e9.bin"]

# Runs on the host around the far-side program of a transfer and flips one bit
# of the last byte on the way: of what we send (upload) or of what the program
# sends back (download). The program itself is unchanged; its exit code is kept.
FLIP = r"""
import os, subprocess, sys
direction, argv = sys.argv[1], sys.argv[2:]
if direction == "upload":
    child = subprocess.Popen(argv, stdin=subprocess.PIPE)
    source, sink = 0, child.stdin.fileno()
else:
    child = subprocess.Popen(argv, stdout=subprocess.PIPE)
    source, sink = child.stdout.fileno(), 1
    os.close(2)  # only the program's stderr (its sha256) stays open
chunks = []
while chunk := os.read(source, 1 << 16):
    chunks.append(chunk)
data = bytearray(b"".join(chunks))
data[-1] ^= 1
view = memoryview(data)
while view:
    view = view[os.write(sink, view):]
os.close(sink)
os._exit(child.wait())
"""


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Sshd:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def endpoint_of(sshd: Sshd) -> SSHEndpoint:
    return SSHEndpoint(
        host=sshd.host,
        port=sshd.port,
        user=sshd.user,
        key_file=sshd.client_key,
        known_hosts=sshd.known_hosts,
    )


@pytest.fixture
def connection(sshd: Sshd) -> SSHManager:
    with SSHManager(endpoint_of(sshd)) as ssh:
        yield ssh


@pytest.fixture
def transfer(connection: SSHManager) -> FileTransferService:
    return FileTransferService(connection, RemoteCommandExecutor(connection), backoff_s=0.01)


def flipping(
    connection: SSHManager, direction: str, times: int
) -> tuple[FileTransferService, Scripted]:
    """The first ``times`` transfers get one bit flipped on the host, going ``direction``."""
    return scripted(connection, lambda argv: [sys.executable, "-c", FLIP, direction, *argv], times)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_keeps_every_byte_and_leaves_no_partial_files(
    transfer: FileTransferService, tmp_path: Path, name: str
) -> None:
    source = tmp_path / "local" / name
    source.parent.mkdir()
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    far = tmp_path / "far" / "deep" / name
    assert transfer.upload(source, str(far)) == sha(source)
    assert far.read_bytes() == source.read_bytes()
    back = tmp_path / "back" / name
    assert transfer.download(str(far), back) == sha(source)
    assert back.read_bytes() == source.read_bytes()
    leftovers = [p.name for p in tmp_path.rglob("*") if ".part" in p.name]
    assert leftovers == []
    assert not (Path.cwd() / "x").exists()


def test_an_existing_file_is_replaced_whole(transfer: FileTransferService, tmp_path: Path) -> None:
    far = tmp_path / "far.bin"
    far.write_bytes(b"old content that is longer than the new one")
    source = tmp_path / "new.bin"
    source.write_bytes(b"new")
    transfer.upload(source, str(far))
    assert far.read_bytes() == b"new"


def test_folders_travel_both_ways(transfer: FileTransferService, tmp_path: Path) -> None:
    local = tmp_path / "local"
    for relative in ("a.txt", "sub/b.bin", "sub/deeper/c d.txt"):
        (local / relative).parent.mkdir(parents=True, exist_ok=True)
        (local / relative).write_bytes(os.urandom(1000) + relative.encode())
    sent = transfer.upload_dir(local, str(tmp_path / "far"))
    received = transfer.download_dir(str(tmp_path / "far"), tmp_path / "back")
    assert sent == received
    assert set(sent) == {"a.txt", "sub/b.bin", "sub/deeper/c d.txt"}
    for relative in sent:
        assert (tmp_path / "back" / relative).read_bytes() == (local / relative).read_bytes()


def test_a_missing_remote_file_is_a_clear_error(
    transfer: FileTransferService, tmp_path: Path
) -> None:
    with pytest.raises(ExecutionFailure, match="cannot read"):
        transfer.download(str(tmp_path / "nope.bin"), tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()


def test_shared_inputs_cross_the_wire_once_per_host(
    sshd: Sshd, transfer: FileTransferService, tmp_path: Path
) -> None:
    video = tmp_path / "color.MP4"
    video.write_bytes(os.urandom(50_000))
    item = InputFile(video, sha(video))
    cache = str(tmp_path / "cache")
    path = transfer.ensure_cached(item, cache)
    assert path == f"{cache}/{item.sha256}.mp4"
    stamp = Path(path).stat().st_mtime_ns
    assert transfer.ensure_cached(item, cache) == path
    # A new runner (fresh service, same host) finds the verified entry too.
    with SSHManager(endpoint_of(sshd)) as ssh:
        again = FileTransferService(ssh, RemoteCommandExecutor(ssh)).ensure_cached(item, cache)
    assert again == path and Path(path).stat().st_mtime_ns == stamp
    assert Path(path).read_bytes() == video.read_bytes()


def test_an_input_whose_content_changed_never_enters_the_cache(
    transfer: FileTransferService, tmp_path: Path
) -> None:
    video = tmp_path / "color.mp4"
    video.write_bytes(b"planned content")
    item = InputFile(video, sha(video))
    video.write_bytes(b"edited afterwards")
    with pytest.raises(ExecutionFailure, match="changed"):
        transfer.ensure_cached(item, str(tmp_path / "cache"))
    assert list((tmp_path / "cache").iterdir()) == []


def partial_files(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".part" in p.name]


def random_file(path: Path, size: int = 1024 * 1024 + 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def test_a_bit_flipped_on_the_way_up_is_caught_and_the_upload_retried(
    connection: SSHManager, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = random_file(tmp_path / "local" / "a.bin")
    far = tmp_path / "far" / "a.bin"
    transfer, remote = flipping(connection, "upload", times=2)
    with caplog.at_level(logging.WARNING):
        assert transfer.upload(source, str(far)) == sha(source)
    assert remote.streams == 3
    assert far.read_bytes() == source.read_bytes()
    assert partial_files(tmp_path) == []
    failures = [r.getMessage() for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert len(failures) == 2 and all("sha256" in m for m in failures)


def test_a_bit_flipped_on_the_way_down_is_caught_and_the_download_retried(
    connection: SSHManager, tmp_path: Path
) -> None:
    far = random_file(tmp_path / "far" / "a.bin")
    back = tmp_path / "back" / "a.bin"
    transfer, remote = flipping(connection, "download", times=2)
    assert transfer.download(str(far), back) == sha(far)
    assert remote.streams == 3
    assert back.read_bytes() == far.read_bytes()
    assert partial_files(tmp_path) == []


def test_an_upload_that_never_arrives_intact_leaves_nothing_on_the_host(
    connection: SSHManager, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "local" / "a.bin")
    far = tmp_path / "far" / "a.bin"
    transfer, remote = flipping(connection, "upload", times=99)
    with pytest.raises(ChecksumMismatch) as caught:
        transfer.upload(source, str(far))
    assert isinstance(caught.value, NetworkFailure)
    assert remote.streams == 3
    assert list(far.parent.iterdir()) == []


def test_a_download_that_never_arrives_intact_leaves_nothing_here(
    connection: SSHManager, tmp_path: Path
) -> None:
    far = random_file(tmp_path / "far" / "a.bin")
    back = tmp_path / "back" / "a.bin"
    transfer, remote = flipping(connection, "download", times=99)
    with pytest.raises(ChecksumMismatch) as caught:
        transfer.download(str(far), back)
    assert isinstance(caught.value, NetworkFailure)
    assert remote.streams == 3
    assert list(back.parent.iterdir()) == []


def test_a_corrupted_input_is_retried_and_the_cache_gets_the_intact_one(
    connection: SSHManager, tmp_path: Path
) -> None:
    video = random_file(tmp_path / "color.mp4")
    item = InputFile(video, sha(video))
    transfer, remote = flipping(connection, "upload", times=1)
    path = transfer.ensure_cached(item, str(tmp_path / "cache"))
    assert remote.streams == 2
    assert sha(Path(path)) == item.sha256
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [Path(path).name]


def test_an_input_that_never_arrives_intact_never_enters_the_cache(
    connection: SSHManager, tmp_path: Path
) -> None:
    video = random_file(tmp_path / "color.mp4")
    item = InputFile(video, sha(video))
    cache = tmp_path / "cache"
    transfer, remote = flipping(connection, "upload", times=99)
    for _ in range(2):  # nothing was recorded as cached: the second call tries again
        with pytest.raises(ChecksumMismatch):
            transfer.ensure_cached(item, str(cache))
    assert remote.streams == 6
    assert list(cache.iterdir()) == []


def test_an_empty_file_travels_both_ways(transfer: FileTransferService, tmp_path: Path) -> None:
    source = tmp_path / "empty.bin"
    source.write_bytes(b"")
    far = tmp_path / "far" / "empty.bin"
    assert transfer.upload(source, str(far)) == hashlib.sha256(b"").hexdigest()
    assert transfer.download(str(far), tmp_path / "back" / "empty.bin") == sha(source)
    assert far.read_bytes() == b"" and (tmp_path / "back" / "empty.bin").read_bytes() == b""


def test_a_destination_the_host_cannot_write_is_a_clear_error(
    transfer: FileTransferService, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"x")
    source = random_file(tmp_path / "a.bin", 8 * 1024 * 1024)  # more than the host's window
    with pytest.raises(ExecutionFailure, match="cannot write"):
        transfer.upload(source, str(blocker / "a.bin"))
    assert blocker.read_bytes() == b"x"


class Scripted(RemoteCommandExecutor):
    """Our executor, but the first ``times`` far-side programs are altered by ``alter``."""

    def __init__(
        self, ssh: SSHManager, alter: Callable[[list[str]], list[str]], times: int
    ) -> None:
        super().__init__(ssh)
        self.alter = alter
        self.times = times
        self.streams = 0

    def open_stream(self, argv: list[str], window: int, max_packet: int) -> Channel:
        self.streams += 1
        if self.streams <= self.times:
            argv = self.alter(argv)
        return super().open_stream(argv, window, max_packet)


def scripted(
    connection: SSHManager, alter: Callable[[list[str]], list[str]], times: int = 1
) -> tuple[FileTransferService, Scripted]:
    remote = Scripted(connection, alter, times)
    return FileTransferService(connection, remote, retries=3, backoff_s=0.01), remote


def unchanged(argv: list[str]) -> list[str]:
    return argv


def killed_by_a_signal(argv: list[str]) -> list[str]:
    # The host reports a signal, not an exit status: paramiko's -1.
    return ["sh", "-c", 'kill -KILL "$$"']


def transfer_one_way(
    direction: str, transfer: FileTransferService, tmp_path: Path
) -> tuple[Path, Path]:
    """Move a random file one way; return (source, destination)."""
    source = random_file(tmp_path / "source" / "a.bin")
    destination = tmp_path / "destination" / "a.bin"
    if direction == "upload":
        transfer.upload(source, str(destination))
    else:
        transfer.download(str(source), destination)
    return source, destination


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_a_connection_dropped_mid_transfer_is_retried(
    connection: SSHManager, tmp_path: Path, direction: str
) -> None:
    def drop(argv: list[str]) -> list[str]:
        threading.Timer(0.2, lambda: connection.transport().close()).start()
        return ["sh", "-c", 'sleep 5; exec "$@"', "sh", *argv]

    transfer, remote = scripted(connection, drop)
    source, destination = transfer_one_way(direction, transfer, tmp_path)
    assert remote.streams == 2
    assert destination.read_bytes() == source.read_bytes()
    assert partial_files(tmp_path) == []


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_a_program_that_ends_without_an_exit_status_is_retried(
    connection: SSHManager, tmp_path: Path, direction: str
) -> None:
    transfer, remote = scripted(connection, killed_by_a_signal)
    source, destination = transfer_one_way(direction, transfer, tmp_path)
    assert remote.streams == 2
    assert destination.read_bytes() == source.read_bytes()


def test_a_local_destination_that_is_a_folder_fails_once_without_retry(
    connection: SSHManager, tmp_path: Path
) -> None:
    far = random_file(tmp_path / "far" / "a.bin")
    folder = tmp_path / "back" / "a.bin"
    folder.mkdir(parents=True)
    transfer, remote = scripted(connection, unchanged, times=0)
    with pytest.raises(ExecutionFailure, match="cannot write") as caught:
        transfer.download(str(far), folder)
    assert not isinstance(caught.value, NetworkFailure)
    assert remote.streams == 1
    assert folder.is_dir() and list(folder.iterdir()) == []
    assert partial_files(tmp_path) == []


def test_uploading_onto_a_remote_folder_is_an_execution_failure(
    connection: SSHManager, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "a.bin")
    folder = tmp_path / "far" / "a.bin"
    folder.mkdir(parents=True)
    transfer, remote = scripted(connection, unchanged, times=0)
    with pytest.raises(ExecutionFailure, match="is a directory"):
        transfer.upload(source, str(folder))
    assert remote.streams == 1
    assert list(folder.iterdir()) == []
    assert partial_files(tmp_path) == []


@pytest.mark.parametrize("direction", ["upload", "download"])
@pytest.mark.parametrize(
    "tool",
    [
        "echo 'garbage  -'",
        "echo 'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855  -'",
        "echo 'e3b0c442  -'",
        "exit 127",
        "exit 1",
    ],
)
def test_a_broken_sha256_tool_on_the_host_is_an_execution_failure(
    connection: SSHManager, tmp_path: Path, direction: str, tool: str
) -> None:
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    for name in ("openssl", "sha256sum"):
        (fake / name).write_text(f"#!/bin/sh\ncat > /dev/null\n{tool}\n")
        (fake / name).chmod(0o755)

    def broken_tool(argv: list[str]) -> list[str]:
        return ["env", f"PATH={fake}:{os.environ['PATH']}", *argv]

    transfer, remote = scripted(connection, broken_tool, times=99)
    with pytest.raises(ExecutionFailure, match="no working sha256 tool"):
        transfer_one_way(direction, transfer, tmp_path)
    assert remote.streams == 1
    assert partial_files(tmp_path) == []
    assert not (tmp_path / "destination" / "a.bin").exists()


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_an_openssl_that_warns_on_stderr_changes_nothing(
    connection: SSHManager, tmp_path: Path, direction: str
) -> None:
    # As an OpenSSL without its config file does, on every call (here: twice per
    # attempt, and a bit flipped the first time, so both digests are read).
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    warning = "WARNING: can't open config file: /usr/local/ssl/openssl.cnf"
    (fake / "openssl").write_text(
        f'#!/bin/sh\necho "{warning}" >&2\necho "{warning}" >&2\nexec /usr/bin/openssl "$@"\n'
    )
    (fake / "openssl").chmod(0o755)
    calls = 0

    def warning_openssl(argv: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            argv = [sys.executable, "-c", FLIP, direction, *argv]
        return ["env", f"PATH={fake}:{os.environ['PATH']}", *argv]

    transfer, remote = scripted(connection, warning_openssl, times=99)
    source, destination = transfer_one_way(direction, transfer, tmp_path)
    assert remote.streams == 2
    assert destination.read_bytes() == source.read_bytes()
    assert partial_files(tmp_path) == []


# What a login shell (e.g. ~/.bashrc running ``pyenv rehash``) may print before the
# far-side program starts, including a stale digest line that must not count.
NOISE = "rm: cannot remove '/root/.pyenv/shims/tmp'\nsha256=" + "0" * 64


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_noise_before_the_far_side_program_is_ignored(
    connection: SSHManager, tmp_path: Path, direction: str
) -> None:
    # Noise on stderr both ways; on stdout only for uploads, where stdout carries
    # only the digest (a download's stdout is the file). The first attempt also
    # gets a bit flipped, so the host's digest is read and compared both ways.
    calls = 0

    def noisy(argv: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            argv = [sys.executable, "-c", FLIP, direction, *argv]
        stdout = f'echo "{NOISE}"; ' if direction == "upload" else ""
        script = f'echo "{NOISE}" >&2; {stdout}exec "$@"'
        return ["sh", "-c", script, "x", *argv]

    transfer, remote = scripted(connection, noisy, times=99)
    source, destination = transfer_one_way(direction, transfer, tmp_path)
    assert remote.streams == 2
    assert destination.read_bytes() == source.read_bytes()
    assert partial_files(tmp_path) == []


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_a_far_side_that_prints_no_digest_line_is_a_clear_error(
    connection: SSHManager, tmp_path: Path, direction: str
) -> None:
    def silenced(argv: list[str]) -> list[str]:
        if direction == "upload":  # a mismatch, so the digest on stdout is needed
            argv = [sys.executable, "-c", FLIP, direction, *argv]
            return ["sh", "-c", 'echo "rm: noise"; exec "$@" > /dev/null', "x", *argv]
        return ["sh", "-c", 'echo "rm: noise" >&2; exec "$@" 2> /dev/null', "x", *argv]

    transfer, remote = scripted(connection, silenced, times=99)
    with pytest.raises(ExecutionFailure, match=r"printed no 'sha256=' line.*'rm: noise'") as caught:
        transfer_one_way(direction, transfer, tmp_path)
    assert "sha256 tool" not in str(caught.value)
    assert remote.streams == 1
    assert partial_files(tmp_path) == []
    assert not (tmp_path / "destination" / "a.bin").exists()
