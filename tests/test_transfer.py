"""FileTransferService against a real sshd: verified, atomic, cached."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from sshd import Sshd, start_sshd

from cosmos_workflow.connection.remote import RemoteCommandExecutor
from cosmos_workflow.connection.ssh import SSHEndpoint, SSHManager
from cosmos_workflow.errors import ExecutionFailure
from cosmos_workflow.manifest.specs import InputFile
from cosmos_workflow.transfer.files import FileTransferService

NAMES = ["plain.bin", "with space.bin", 'it\'s "quoted".bin', "$(touch x).bin", "\u00e9t\u00e9.bin"]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Sshd:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def transfer(sshd: Sshd) -> FileTransferService:
    endpoint = SSHEndpoint(
        host=sshd.host,
        port=sshd.port,
        user=sshd.user,
        key_file=sshd.client_key,
        known_hosts=sshd.known_hosts,
    )
    with SSHManager(endpoint) as ssh:
        yield FileTransferService(ssh, RemoteCommandExecutor(ssh), backoff_s=0.01)


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
    endpoint = SSHEndpoint(
        host=sshd.host,
        port=sshd.port,
        user=sshd.user,
        key_file=sshd.client_key,
        known_hosts=sshd.known_hosts,
    )
    with SSHManager(endpoint) as ssh:
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
