"""FileTransferService: verified uploads and downloads over SSH.

Every transfer streams the file through one SSH channel while both ends hash
it: the far side with ``sha256sum`` reading the same stream, this side with
hashlib. The file lands under a temporary name and is renamed only when both
digests agree; otherwise it is deleted and the transfer is retried. A file
whose checksum fails is never used.

Uploads of inputs go to a content-addressed cache (``<work_dir>/cache/<sha256>``),
so a file that many runs share crosses the wire once per host.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cosmos_workflow.connection.remote import RemoteCommand, RemoteCommandExecutor
from cosmos_workflow.connection.ssh import TRANSPORT_ERRORS, Channel, SSHManager
from cosmos_workflow.errors import AuthFailure, ExecutionFailure, NetworkFailure
from cosmos_workflow.manifest.specs import InputFile

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
WINDOW = 64 * CHUNK
# Far-side programs: fixed text, every path is a positional argument ("$1").
_RECEIVE = 'set -o pipefail; tee -- "$1" | sha256sum'
_SEND = (
    "set -eo pipefail; "
    '[ -f "$1" ] && [ -r "$1" ] || { echo "no readable file: $1" >&2; exit 66; }; '
    'tee >(sha256sum >&2) < "$1"; wait $!'
)
T = TypeVar("T")


class ChecksumMismatch(NetworkFailure):
    """The bytes that arrived differ from the bytes that were sent."""


class FileTransferService:
    """Moves files between this machine and one SSH host, verified by sha256.

    Args:
        ssh: The connection.
        remote: Command executor on the same connection.
        retries: Attempts per file after a network error or checksum mismatch.
        backoff_s: Seconds before the first retry (doubled each time).
    """

    def __init__(
        self,
        ssh: SSHManager,
        remote: RemoteCommandExecutor,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self._ssh = ssh
        self._remote = remote
        self._retries = retries
        self._backoff_s = backoff_s
        self._cached: set[str] = set()

    # -- public ------------------------------------------------------------
    def upload(self, local: Path, remote_path: str, expected: str | None = None) -> str:
        """Upload one file; return its sha256.

        Args:
            local: The file to send.
            remote_path: Where it goes on the host.
            expected: The sha256 the content must have; otherwise nothing lands.

        Raises:
            ExecutionFailure: the content does not have the ``expected`` sha256.
        """
        return self._retry(
            f"upload {local}", lambda: self._upload_once(local, remote_path, expected)
        )

    def download(self, remote_path: str, local: Path) -> str:
        """Download one file; return its sha256."""
        return self._retry(
            f"download {remote_path}", lambda: self._download_once(remote_path, local)
        )

    def upload_dir(self, local: Path, remote_dir: str) -> dict[str, str]:
        """Upload every file under ``local``; return relative path -> sha256."""
        sums = {}
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            relative = path.relative_to(local).as_posix()
            sums[relative] = self.upload(path, posixpath.join(remote_dir, relative))
        return sums

    def download_dir(self, remote_dir: str, local: Path) -> dict[str, str]:
        """Download every file under ``remote_dir``; return relative path -> sha256."""
        listing = self._remote.run(
            ["find", remote_dir, "-type", "f", "-printf", "%P\\0"], check=True
        )
        sums = {}
        for relative in sorted(filter(None, listing.stdout.split("\0"))):
            sums[relative] = self.download(posixpath.join(remote_dir, relative), local / relative)
        return sums

    def ensure_cached(self, item: InputFile, cache_dir: str) -> str:
        """Make ``item`` present in the host's content-addressed cache; return its path.

        A cache entry is only ever created by a verified upload, under its
        sha256, so an existing entry is trusted.

        Raises:
            ExecutionFailure: the local file no longer has its planned sha256.
        """
        target = posixpath.join(cache_dir, item.stored_name)
        if target in self._cached:
            return target
        present = self._remote.run(["test", "-f", target]).exit_code == 0
        if not present:
            self.upload(item.path, target, expected=item.sha256)
        self._cached.add(target)
        return target

    # -- one attempt ---------------------------------------------------------
    def _upload_once(self, local: Path, remote_path: str, expected: str | None) -> str:
        parent = posixpath.dirname(remote_path) or "."
        partial = f"{remote_path}.part-{uuid.uuid4().hex[:8]}"
        self._remote.run(["mkdir", "-p", "--", parent], check=True)
        digest = hashlib.sha256()
        channel = self._open(RemoteCommand(["bash", "-c", _RECEIVE, "receive", partial]))
        try:
            with local.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
                    channel.sendall(chunk)
            channel.shutdown_write()
            far, code = self._collect(channel)
        except TRANSPORT_ERRORS as exc:
            raise NetworkFailure(f"upload of {local} to {self._ssh.endpoint.label}: {exc}") from exc
        finally:
            channel.close()
        near = digest.hexdigest()
        far_digest = far.split()[0].decode() if far.split() else ""
        if expected is not None and near != expected:
            self._remote.run(["rm", "-f", "--", partial])
            raise ExecutionFailure(
                f"input {local} changed since the runs were planned (sha256 {near[:12]}..., "
                f"expected {expected[:12]}...); run the command again"
            )
        if code != 0 or far_digest != near:
            self._remote.run(["rm", "-f", "--", partial])
            raise ChecksumMismatch(
                f"upload of {local}: sha256 {far_digest or 'missing'} on the host, {near} here"
            )
        self._remote.run(["mv", "-f", "--", partial, remote_path], check=True)
        return near

    def _download_once(self, remote_path: str, local: Path) -> str:
        local.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        channel = self._open(RemoteCommand(["bash", "-c", _SEND, "send", remote_path]))
        handle = tempfile.NamedTemporaryFile(
            dir=local.parent, prefix=f".{local.name}.", suffix=".part", delete=False
        )
        partial = Path(handle.name)
        try:
            far = bytearray()
            with handle:
                while True:
                    data = channel.recv(CHUNK)
                    if not data:
                        break
                    digest.update(data)
                    handle.write(data)
                while not channel.exit_status_ready() or channel.recv_stderr_ready():
                    far.extend(channel.recv_stderr(CHUNK))
                code = channel.recv_exit_status()
            near = digest.hexdigest()
            if code != 0:
                raise ExecutionFailure(
                    f"cannot read {remote_path} on {self._ssh.endpoint.label} (exit code {code}): "
                    f"{bytes(far).decode('utf-8', 'replace').strip()[-300:]}"
                )
            far_digest = bytes(far).split()[0].decode() if bytes(far).split() else ""
            if far_digest != near:
                raise ChecksumMismatch(
                    f"download of {remote_path}: sha256 {far_digest or 'missing'} on the host, "
                    f"{near} here"
                )
            partial.replace(local)
            return near
        except TRANSPORT_ERRORS as exc:
            raise NetworkFailure(
                f"download of {remote_path} from {self._ssh.endpoint.label}: {exc}"
            ) from exc
        finally:
            channel.close()
            partial.unlink(missing_ok=True)

    # -- plumbing --------------------------------------------------------------
    def _open(self, command: RemoteCommand) -> Channel:
        return self._ssh.exec_stream(command.render(), WINDOW)

    @staticmethod
    def _collect(channel: Channel) -> tuple[bytes, int]:
        out = bytearray()
        while True:
            data = channel.recv(CHUNK)
            if not data:
                break
            out.extend(data)
        return bytes(out), channel.recv_exit_status()

    def _retry(self, what: str, attempt: Callable[[], T]) -> T:
        delay = self._backoff_s
        for number in range(1, self._retries + 1):
            try:
                return attempt()
            except NetworkFailure as exc:
                if isinstance(exc, AuthFailure) or number == self._retries:
                    raise
                logger.warning("%s failed (attempt %d/%d): %s", what, number, self._retries, exc)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")
