"""FileTransferService: verified uploads and downloads over SSH.

Each transfer is one SSH session that runs a small POSIX ``sh`` program on
the host (fixed text; every path is a positional argument, never shell
text), with the file's bytes streamed through the session's channel.

- Upload: we send the sha256 the content must have (the planned one, or one
  computed here from the file), then the bytes. The host writes them to a
  temporary name, hashes that file once it has landed, and renames it to
  the final name only if the digests agree; otherwise it deletes it and we
  retry.
- Download: the host hashes the file while sending it; the bytes land here
  under a temporary name, hashed as they arrive, and are renamed only when
  the host's sha256 equals ours; otherwise they are deleted and we retry.

A file whose checksum fails is never used. The host hashes with
``openssl dgst -sha256`` when it has it (about four times as fast as
coreutils ``sha256sum``, which is the fallback).

Uploads of inputs go to a content-addressed cache (``<work_dir>/cache/<sha256>``),
so a file that many runs share crosses the wire once per host.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import posixpath
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, TypeVar

from cosmos_workflow.connection.remote import RemoteCommandExecutor
from cosmos_workflow.connection.ssh import SSHManager, transport_errors
from cosmos_workflow.errors import AuthFailure, ExecutionFailure, NetworkFailure
from cosmos_workflow.manifest.specs import InputFile

if TYPE_CHECKING:
    from paramiko import Channel

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# How far the host may send ahead of what we have read (downloads).
WINDOW = 16 * CHUNK
# The largest data packet the host may send us: fewer, larger packets cost
# paramiko less per byte. (Uploads use the host's limit, 32 KiB for OpenSSH.)
PACKET = 256 * 1024
# Exit code of the upload program when what landed has another sha256.
MISMATCH = 65
# Exit code of both programs when the host's sha256 tool fails or prints
# something other than a digest.
NO_HASH_TOOL = 69
# Exit code of a shell that cannot find a command.
NOT_FOUND = 127
# Far-side programs: fixed text, every path is a positional argument.
# ``digest FILE`` sets $got to the file's sha256 (64 lowercase hex digits).
_SHA256 = f"""sha256() {{ if command -v openssl >/dev/null 2>&1; \
then openssl dgst -sha256 -r; else sha256sum; fi; }}
digest() {{
got=$(sha256 < "$1") || exit {NO_HASH_TOOL}
got=${{got%% *}}
case $got in *[!0-9a-f]*|'') exit {NO_HASH_TOOL};; esac
[ ${{#got}} -eq 64 ] || exit {NO_HASH_TOOL}
}}
"""
# $1 final name, $2 temporary name, $3 folder; stdin: the expected sha256 on
# one line, then the bytes. Prints "sha256=" and the sha256 of what landed on
# one line: the host's login shell may print other lines first. It reads its
# input to the end even when it fails (see _SEND).
_RECEIVE = (
    _SHA256
    + f"""set -e
trap 'rm -f -- "$2"; cat >/dev/null' EXIT
trap 'exit 129' HUP INT PIPE TERM
IFS= read -r want
mkdir -p -- "$3"
cat > "$2"
digest "$2"
echo "sha256=$got"
[ "$got" = "$want" ] || exit {MISMATCH}
[ -d "$1" ] && {{ echo "is a directory: $1" >&2; exit 1; }}
mv -f -- "$2" "$1"
"""
)
# $1 the file. stdout: its bytes; stderr: "sha256=" and its sha256, computed
# at the same time, on one line (other lines may come first). The last two
# lines, and the trap when it fails, keep the session open until our EOF
# (sshd drops the connection when an EOF comes after it closed the channel),
# and paramiko
# stalls for 30 s and drops the connection when the host closes a channel
# during a key re-exchange that paramiko started (paramiko issue #822; it
# starts one every 512 MiB), and it never sends our EOF during one.
_SEND = (
    _SHA256
    + """set -e
trap 'exec >&- 2>&-; cat >/dev/null' EXIT
[ -f "$1" ] && [ -r "$1" ] || { echo "no readable file: $1" >&2; exit 66; }
{ digest "$1"; echo "sha256=$got" >&2; } &
cat < "$1"
wait $!
exec >&- 2>&-
exec cat > /dev/null
"""
)
# The line the far-side programs print their sha256 on.
DIGEST_LINE = re.compile(rb"^sha256=([0-9a-f]{64})$", re.MULTILINE)
T = TypeVar("T")


class ChecksumMismatch(NetworkFailure):
    """The bytes that arrived differ from the bytes that were sent."""


class FileTransferService:
    """Moves files between this machine and one SSH host, verified by sha256.

    Args:
        ssh: The connection.
        remote: Command executor on the same connection; transfers run through it.
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
            ExecutionFailure: the content does not have the ``expected`` sha256,
                ``local`` cannot be read, or the host cannot write the file.
            ChecksumMismatch: every attempt arrived with another sha256.
            NetworkFailure: the connection failed on every attempt.
        """
        return self._retry(
            f"upload {local}", lambda: self._upload_once(local, remote_path, expected)
        )

    def download(self, remote_path: str, local: Path) -> str:
        """Download one file; return its sha256.

        Raises:
            ExecutionFailure: the host cannot read the file.
            ChecksumMismatch: every attempt arrived with another sha256.
            NetworkFailure: the connection failed on every attempt.
        """
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
        partial = f"{remote_path}.part-{uuid.uuid4().hex[:8]}"
        parent = posixpath.dirname(remote_path) or "."
        argv = ["sh", "-c", _RECEIVE, "receive", remote_path, partial, parent]
        try:
            handle = local.open("rb", buffering=0)
        except OSError as exc:
            raise ExecutionFailure(f"cannot read {local}: {exc}") from exc
        with handle:
            # The host's shell starts while we hash.
            channel = self._remote.open_stream(argv, WINDOW, PACKET)
            try:
                want = expected if expected is not None else _local_sha256(handle, local)
                _rewind(handle, local)
                out, err, code = self._push(channel, want, handle, local)
            finally:
                _close(channel)
        if code == 0:
            return want
        if code == MISMATCH:
            landed = self._far_digest(out, f"upload of {local}")
            if expected is not None and _file_sha256(local) != expected:
                raise ExecutionFailure(
                    f"input {local} changed since the runs were planned "
                    f"(expected sha256 {expected[:12]}...); run the command again"
                )
            raise ChecksumMismatch(f"upload of {local}: sha256 {landed} on the host, {want} here")
        raise self._far_failure(f"cannot write {remote_path}", code, err)

    def _push(
        self, channel: Channel, want: str, handle: BinaryIO, local: Path
    ) -> tuple[bytes, bytes, int]:
        """Send ``want`` and the file, then EOF; return the host's stdout, stderr, exit code."""
        try:
            channel.sendall(f"{want}\n".encode())
            _send_file(channel, handle, local)
            channel.shutdown_write()
            return _finish(channel)
        except transport_errors() as exc:
            raise NetworkFailure(f"upload of {local} to {self._ssh.endpoint.label}: {exc}") from exc

    def _download_once(self, remote_path: str, local: Path) -> str:
        handle = _temporary_file(local)
        partial = Path(handle.name)
        try:
            with handle:
                near, err, code = self._pull(remote_path, handle)
            if code != 0:
                raise self._far_failure(f"cannot read {remote_path}", code, err)
            far = self._far_digest(err, f"download of {remote_path}")
            if far != near:
                raise ChecksumMismatch(
                    f"download of {remote_path}: sha256 {far} on the host, {near} here"
                )
            try:
                partial.replace(local)
            except OSError as exc:
                raise ExecutionFailure(f"cannot write {local}: {exc}") from exc
            return near
        finally:
            partial.unlink(missing_ok=True)

    def _pull(self, remote_path: str, handle: IO[bytes]) -> tuple[str, bytes, int]:
        """Receive ``remote_path`` into ``handle``; return our sha256, host's stderr, exit code."""
        argv = ["sh", "-c", _SEND, "send", remote_path]
        channel = self._remote.open_stream(argv, WINDOW, PACKET)
        try:
            near = _receive_file(channel, handle)
            # The host program waits for our EOF after it has sent everything.
            channel.shutdown_write()
            _, err, code = _finish(channel)
        except transport_errors() as exc:
            raise NetworkFailure(
                f"download of {remote_path} from {self._ssh.endpoint.label}: {exc}"
            ) from exc
        finally:
            _close(channel)
        return near, err, code

    # -- plumbing --------------------------------------------------------------
    def _far_failure(self, what: str, code: int, err: bytes) -> ExecutionFailure | NetworkFailure:
        """The error for a host program that exited with ``code`` (-1: no exit status)."""
        label = self._ssh.endpoint.label
        if code == -1:
            return NetworkFailure(f"{what}: {label} sent no exit status (connection lost?)")
        if code in (NO_HASH_TOOL, NOT_FOUND):
            return ExecutionFailure(
                f"{what} on {label}: the host has no working sha256 tool (openssl or sha256sum)"
            )
        detail = err.decode("utf-8", "replace").strip()[-300:]
        return ExecutionFailure(f"{what} on {label} (exit code {code}): {detail}")

    def _far_digest(self, text: bytes, what: str) -> str:
        """The sha256 of the last ``sha256=<64 hex digits>`` line in ``text``.

        Other lines are ignored: the host's login shell may print some first.

        Raises:
            ExecutionFailure: ``text`` has no such line.
        """
        found = DIGEST_LINE.findall(text)
        if not found:
            raise ExecutionFailure(
                f"{what}: {self._ssh.endpoint.label} printed no 'sha256=' line; "
                f"its output ended with {_tail(text)}"
            )
        return found[-1].decode("ascii")

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


def _sha256(handle: BinaryIO) -> str:
    """The sha256 of the rest of ``handle``."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while count := handle.readinto(buffer):
        digest.update(view[:count])
    return digest.hexdigest()


def _local_sha256(handle: BinaryIO, path: Path) -> str:
    """The sha256 of the rest of ``handle``, which reads ``path``.

    Raises:
        ExecutionFailure: the file cannot be read.
    """
    try:
        return _sha256(handle)
    except OSError as exc:
        raise ExecutionFailure(f"cannot read {path}: {exc}") from exc


def _file_sha256(path: Path) -> str:
    """The sha256 of the file at ``path``.

    Raises:
        ExecutionFailure: the file cannot be read.
    """
    try:
        with path.open("rb", buffering=0) as handle:
            return _sha256(handle)
    except OSError as exc:
        raise ExecutionFailure(f"cannot read {path}: {exc}") from exc


def _rewind(handle: BinaryIO, path: Path) -> None:
    """Go back to the start of ``handle``, which reads ``path``.

    Raises:
        ExecutionFailure: the file cannot be repositioned.
    """
    try:
        handle.seek(0)
    except OSError as exc:
        raise ExecutionFailure(f"cannot read {path}: {exc}") from exc


def _temporary_file(local: Path) -> IO[bytes]:
    """A new, open temporary file next to ``local`` (its folder is created).

    Raises:
        ExecutionFailure: the folder or the file cannot be created.
    """
    try:
        local.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.NamedTemporaryFile(
            dir=local.parent, prefix=f".{local.name}.", suffix=".part", delete=False
        )
    except OSError as exc:
        raise ExecutionFailure(f"cannot write {local}: {exc}") from exc


def _close(channel: Channel) -> None:
    """Close ``channel``; a connection that is already broken raises nothing here."""
    with contextlib.suppress(*transport_errors()):
        channel.close()


def _send_file(channel: Channel, handle: BinaryIO, path: Path) -> None:
    """Send the rest of ``handle`` (reading ``path``) in CHUNK pieces via one reused buffer.

    Stops early when the host program has exited (it reads no more); its exit
    code and message then say why.

    Raises:
        ExecutionFailure: the file cannot be read.
    """
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while True:
        try:
            count = handle.readinto(buffer)
        except OSError as exc:
            raise ExecutionFailure(f"cannot read {path}: {exc}") from exc
        if not count:
            return
        data = view[:count]
        # Channel.sendall copies the unsent rest after every 32 KiB packet;
        # slicing a memoryview does not.
        while data:
            if channel.exit_status_ready():
                return
            data = data[channel.send(data) :]


def _receive_file(channel: Channel, handle: IO[bytes]) -> str:
    """Write the channel's stdout to ``handle`` until EOF; return its sha256.

    A worker thread hashes each piece while this one writes it and receives
    the next (hashlib releases the GIL), at most one piece behind.

    Raises:
        ExecutionFailure: ``handle`` cannot be written.
    """
    digest = hashlib.sha256()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher:
        hashed: Future[None] | None = None
        # The channel's ChunkBuffer joins whole packets up to CHUNK bytes: one
        # copy into memory that is reused, however far ahead the host is.
        while data := channel.recv(CHUNK):
            if hashed is not None:
                hashed.result()
            hashed = hasher.submit(digest.update, data)
            try:
                handle.write(data)
            except OSError as exc:
                raise ExecutionFailure(f"cannot write {handle.name}: {exc}") from exc
        if hashed is not None:
            hashed.result()
    return digest.hexdigest()


def _finish(channel: Channel) -> tuple[bytes, bytes, int]:
    """Read the rest of stdout and all of stderr, and wait for the exit code.

    The caller has sent EOF, or the host program does not wait for it.
    """
    out = bytearray()
    while data := channel.recv(CHUNK):
        out.extend(data)
    err = bytearray()
    while channel.recv_stderr_ready():
        err.extend(channel.recv_stderr(CHUNK))
    return bytes(out), bytes(err), channel.recv_exit_status()


def _tail(text: bytes, lines: int = 3, width: int = 100) -> str:
    """The last few lines of ``text``, each cut to ``width`` characters, for a message."""
    last = text.decode("utf-8", "replace").strip().splitlines()[-lines:]
    if not last:
        return "nothing (no output)"
    return repr("\n".join(line if len(line) <= width else line[:width] + "..." for line in last))
