"""The bulk data path of FileTransferService against a real sshd: every size arrives whole.

Downloads arrive through the channel's ChunkBuffer (packets of up to 256 KiB
joined into 1 MiB reads) and uploads leave in the host's 32 KiB packets, so
the sizes here sit on those borders, and one file is larger than the window.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from paramiko import Channel
from sshd import Sshd, start_sshd

from cosmos_workflow.connection.remote import RemoteCommandExecutor
from cosmos_workflow.connection.ssh import SSHEndpoint, SSHManager
from cosmos_workflow.errors import NetworkFailure
from cosmos_workflow.transfer.files import CHUNK, WINDOW, FileTransferService

KIB = 1024
SIZES = [
    1,
    2,
    32 * KIB - 1,
    32 * KIB + 1,
    256 * KIB + 1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    3 * CHUNK + 7,
]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Sshd:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def connection(sshd: Sshd) -> SSHManager:
    endpoint = SSHEndpoint(
        host=sshd.host,
        port=sshd.port,
        user=sshd.user,
        key_file=sshd.client_key,
        known_hosts=sshd.known_hosts,
    )
    with SSHManager(endpoint) as ssh:
        yield ssh


@pytest.fixture
def transfer(connection: SSHManager) -> FileTransferService:
    return FileTransferService(connection, RemoteCommandExecutor(connection), backoff_s=0.01)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def no_partials(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".part" in p.name]


@pytest.mark.parametrize("size", SIZES)
def test_a_file_of_any_size_travels_both_ways_unchanged(
    transfer: FileTransferService, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    far = tmp_path / "far" / "a.bin"
    assert transfer.upload(source, str(far), expected=sha(data)) == sha(data)
    assert far.read_bytes() == data
    back = tmp_path / "back" / "a.bin"
    assert transfer.download(str(far), back) == sha(data)
    assert back.read_bytes() == data
    assert no_partials(tmp_path)


def test_a_file_larger_than_the_window_travels_both_ways_verified(
    transfer: FileTransferService, tmp_path: Path
) -> None:
    size = 2 * WINDOW + CHUNK // 2 + 3
    source = tmp_path / "big.bin"
    with source.open("wb") as handle:
        for _ in range(size // CHUNK):
            handle.write(os.urandom(CHUNK))
        handle.write(os.urandom(size % CHUNK))
    want = hashlib.sha256(source.read_bytes()).hexdigest()
    far = tmp_path / "far" / "big.bin"
    assert transfer.upload(source, str(far)) == want
    back = tmp_path / "back" / "big.bin"
    assert transfer.download(str(far), back) == want
    assert back.stat().st_size == size
    assert hashlib.sha256(back.read_bytes()).hexdigest() == want
    assert no_partials(tmp_path)


class CutEveryTime(RemoteCommandExecutor):
    """Our executor; each far-side program sends some data, then the link is cut."""

    def __init__(self, ssh: SSHManager) -> None:
        super().__init__(ssh)
        self.streams = 0

    def open_stream(self, argv: list[str], window: int, max_packet: int) -> Channel:
        self.streams += 1
        transport = self._ssh.transport()
        threading.Timer(0.5, transport.close).start()
        # The first 3 MiB of the file, then the host goes quiet.
        return super().open_stream(
            ["sh", "-c", 'head -c 3145728 "$1"; exec sleep 30', "x", argv[-1]], window, max_packet
        )


def test_a_download_whose_link_is_cut_every_time_fails_loudly_and_leaves_nothing(
    sshd: Sshd, tmp_path: Path
) -> None:
    far = tmp_path / "far.bin"
    far.write_bytes(os.urandom(8 * CHUNK))
    endpoint = SSHEndpoint(
        host=sshd.host,
        port=sshd.port,
        user=sshd.user,
        key_file=sshd.client_key,
        known_hosts=sshd.known_hosts,
    )
    back = tmp_path / "back" / "far.bin"
    with SSHManager(endpoint) as ssh:
        remote = CutEveryTime(ssh)
        transfer = FileTransferService(ssh, remote, retries=2, backoff_s=0.01)
        with pytest.raises(NetworkFailure, match=r"connection lost|download of"):
            transfer.download(str(far), back)
    assert remote.streams == 2
    assert list(back.parent.iterdir()) == []
