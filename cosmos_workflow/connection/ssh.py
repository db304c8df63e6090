"""SSHManager: one verified, reusable SSH connection per host (paramiko).

Host keys are checked against one known_hosts file with RejectPolicy: an
unknown host or a changed key is refused, never added. Keys come from the
target's config (ssh-agent optional). A jump host (ProxyJump) is supported.
The connection is shared by threads; a dropped connection is reopened on
the next use. paramiko is imported when a connection is first opened (a
command that reaches no SSH target never loads it).

Two settings differ from paramiko's defaults, both measured with
benchmarks/transfer.py: AES-GCM is preferred when the server offers it
(paramiko encrypts and authenticates a packet in one call there, about 1.5x
the throughput of its default aes128-ctr + hmac-sha2-256; the other ciphers
remain as fallbacks), and the TCP socket has TCP_NODELAY (without it, every
new channel waits about 40 ms for a delayed ACK).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from cosmos_workflow.connection import chunk_buffer
from cosmos_workflow.errors import AuthFailure, NetworkFailure, ValidationFailure

if TYPE_CHECKING:
    import paramiko

logger = logging.getLogger(__name__)

# Tried first, in this order, when the server offers them.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def transport_errors() -> tuple[type[BaseException], ...]:
    """What a broken or closed connection raises while data flows on a channel."""
    import paramiko

    return (paramiko.SSHException, OSError, EOFError)


@dataclass(frozen=True)
class SSHEndpoint:
    """How to reach and authenticate to one SSH server.

    Attributes:
        host: Name or address.
        port: TCP port.
        user: Login name.
        key_file: Private key; None uses the agent only.
        known_hosts: The file the host key must be in.
        use_agent: Also try keys from ssh-agent.
        connect_timeout: Seconds for TCP connect, banner and authentication.
        keepalive_s: Seconds between keepalive packets (0: off).
    """

    host: str
    user: str
    known_hosts: Path
    port: int = 22
    key_file: Path | None = None
    use_agent: bool = False
    connect_timeout: float = 15.0
    keepalive_s: int = 30

    @property
    def host_key_name(self) -> str:
        """The name known_hosts uses for this host: ``host`` or ``[host]:port``."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def label(self) -> str:
        """user@host:port, for messages."""
        return f"{self.user}@{self.host}:{self.port}"


def parse_jump(spec: str, defaults: SSHEndpoint) -> SSHEndpoint:
    """Parse a ProxyJump spec ``[user@]host[:port]``; key and known_hosts are shared.

    Raises:
        ValidationFailure: the spec is malformed.
    """
    user, _, hostport = spec.rpartition("@")
    host, sep, port = hostport.partition(":")
    if not host or (sep and not port.isdigit()):
        raise ValidationFailure(f"target.jump_host must be [user@]host[:port], got {spec!r}")
    return SSHEndpoint(
        host=host,
        port=int(port) if sep else 22,
        user=user or defaults.user,
        known_hosts=defaults.known_hosts,
        key_file=defaults.key_file,
        use_agent=defaults.use_agent,
        connect_timeout=defaults.connect_timeout,
        keepalive_s=defaults.keepalive_s,
    )


class HostKeyFailure(AuthFailure):
    """The server's host key is unknown or differs from known_hosts."""


def _check_known(endpoint: SSHEndpoint) -> None:
    import paramiko

    path = endpoint.known_hosts
    if not path.is_file():
        raise HostKeyFailure(
            f"known_hosts file {path} does not exist; create it with the host's key: "
            f"ssh-keyscan -p {endpoint.port} {endpoint.host} >> {path} "
            "(check the fingerprint with the host's owner first)"
        )
    try:
        keys = paramiko.HostKeys(str(path))
    except (OSError, paramiko.SSHException) as exc:
        raise HostKeyFailure(f"cannot read known_hosts file {path}: {exc}") from exc
    if keys.lookup(endpoint.host_key_name) is None:
        raise HostKeyFailure(
            f"host {endpoint.host_key_name} is not in {path}; refusing to connect. "
            f"Add its key after checking the fingerprint: "
            f"ssh-keyscan -p {endpoint.port} {endpoint.host} >> {path}"
        )


def _transport(sock: object, **options: object) -> paramiko.Transport:
    """A paramiko Transport that proposes PREFERRED_CIPHERS first, on a TCP_NODELAY socket."""
    import paramiko

    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock, **options)
    security = transport.get_security_options()
    offered = security.ciphers
    first = tuple(name for name in PREFERRED_CIPHERS if name in offered)
    security.ciphers = first + tuple(name for name in offered if name not in first)
    return transport


def _open_client(endpoint: SSHEndpoint, sock: paramiko.Channel | None) -> paramiko.SSHClient:
    """Connect and authenticate one client; errors are classified."""
    import paramiko

    _check_known(endpoint)
    client = paramiko.SSHClient()
    client.load_host_keys(str(endpoint.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            endpoint.host,
            port=endpoint.port,
            username=endpoint.user,
            key_filename=str(endpoint.key_file) if endpoint.key_file else None,
            allow_agent=endpoint.use_agent,
            look_for_keys=False,
            timeout=endpoint.connect_timeout,
            banner_timeout=endpoint.connect_timeout,
            auth_timeout=endpoint.connect_timeout,
            channel_timeout=endpoint.connect_timeout,
            sock=sock,
            transport_factory=_transport,
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyFailure(
            f"the host key of {endpoint.host_key_name} does NOT match {endpoint.known_hosts} "
            "(the host was reinstalled, or someone is intercepting the connection); refusing "
            "to connect. If you know why it changed, remove the old entry with "
            f"ssh-keygen -R '{endpoint.host_key_name}' -f {endpoint.known_hosts} and add the new "
            "one after checking its fingerprint"
        ) from exc
    except paramiko.AuthenticationException as exc:
        client.close()
        key = endpoint.key_file or "ssh-agent"
        raise AuthFailure(
            f"authentication as {endpoint.label} failed with key {key}; check target.user "
            "and target.key_file, and that the public key is in the host's authorized_keys"
        ) from exc
    except FileNotFoundError as exc:
        client.close()
        raise ValidationFailure(f"target.key_file {endpoint.key_file} does not exist") from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        raise NetworkFailure(f"cannot connect to {endpoint.label}: {exc}") from exc
    transport = client.get_transport()
    if transport is not None and endpoint.keepalive_s:
        transport.set_keepalive(endpoint.keepalive_s)
    return client


class SSHManager:
    """A shared SSH connection to one host, opened lazily, reopened if dropped.

    Use as a context manager; every method is safe to call from several
    threads (paramiko opens channels on one transport concurrently).

    Args:
        endpoint: The host.
        jump: An optional jump host the connection is tunnelled through.
    """

    def __init__(self, endpoint: SSHEndpoint, jump: SSHEndpoint | None = None) -> None:
        self.endpoint = endpoint
        self.jump = jump
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._jump_client: paramiko.SSHClient | None = None

    def __enter__(self) -> SSHManager:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        """True while the transport is up."""
        transport = self._client.get_transport() if self._client else None
        return bool(transport and transport.is_active())

    def connect(self) -> None:
        """Open the connection if it is not up (idempotent, thread-safe).

        Raises:
            HostKeyFailure, AuthFailure: refused (exit code 3).
            NetworkFailure: the host cannot be reached.
        """
        with self._lock:
            if self.connected:
                return
            self._close_clients()
            sock = None
            if self.jump is not None:
                self._jump_client = _open_client(self.jump, None)
                sock = self._tunnel(self._jump_client)
            self._client = _open_client(self.endpoint, sock)
            logger.info("Connected to %s", self.endpoint.label)

    def _tunnel(self, jump: paramiko.SSHClient) -> paramiko.Channel:
        import paramiko

        transport = jump.get_transport()
        assert transport is not None
        try:
            return transport.open_channel(
                "direct-tcpip", (self.endpoint.host, self.endpoint.port), ("127.0.0.1", 0)
            )
        except (paramiko.SSHException, OSError) as exc:
            raise NetworkFailure(
                f"jump host {self.jump.label if self.jump else ''} cannot reach "
                f"{self.endpoint.host}:{self.endpoint.port}: {exc}"
            ) from exc

    def transport(self) -> paramiko.Transport:
        """The live transport, reconnecting first if the connection dropped."""
        self.connect()
        assert self._client is not None
        transport = self._client.get_transport()
        if transport is None:
            raise NetworkFailure(f"connection to {self.endpoint.label} is closed")
        return transport

    def open_session(self, timeout: float | None = None) -> paramiko.Channel:
        """A new session channel (for one command).

        Raises:
            NetworkFailure: the channel cannot be opened.
        """
        import paramiko

        try:
            return self.transport().open_session(timeout=timeout)
        except (TimeoutError, paramiko.SSHException, OSError, EOFError) as exc:
            raise NetworkFailure(f"cannot open a channel to {self.endpoint.label}: {exc}") from exc

    def exec_stream(self, command: str, window: int, max_packet: int) -> paramiko.Channel:
        """Start ``command`` (already quoted) on a channel with a large window, for bulk data.

        The channel keeps what it receives in a ChunkBuffer (chunk_buffer.py,
        when paramiko's own buffer is as expected), which hands the packets
        to ``recv`` without paramiko's copies.

        Args:
            command: The command line, every word already quoted.
            window: Bytes the host may send ahead of what has been read.
            max_packet: The largest data packet the host may send on this channel.

        Raises:
            NetworkFailure: the channel cannot be opened or the command started.
        """
        try:
            channel = self.transport().open_session(window_size=window, max_packet_size=max_packet)
            chunk_buffer.install(channel)
        except transport_errors() as exc:
            raise NetworkFailure(f"cannot open a channel to {self.endpoint.label}: {exc}") from exc
        try:
            channel.exec_command(command)
        except transport_errors() as exc:
            with contextlib.suppress(*transport_errors()):
                channel.close()
            raise NetworkFailure(f"{self.endpoint.label}: cannot start command: {exc}") from exc
        return channel

    def check_alive(self, timeout: float) -> None:
        """Prove the host answers: open and close one channel within ``timeout`` seconds.

        A host cut off the network answers nothing, and reads on its open
        channels would wait for TCP to give up (many minutes). A failed
        check closes the connection, so those reads end now.

        Raises:
            NetworkFailure: no answer in time (the connection is closed).
        """
        import paramiko

        try:
            channel = self.transport().open_session(timeout=timeout)
            channel.close()
        except paramiko.ChannelException:
            # The host answered (it refused one more session, e.g. MaxSessions): alive.
            return
        except (TimeoutError, paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise NetworkFailure(f"{self.endpoint.label} does not answer: {exc}") from exc

    def close(self) -> None:
        """Close the connection (and the jump host's)."""
        with self._lock:
            self._close_clients()

    def _close_clients(self) -> None:
        for client in (self._client, self._jump_client):
            if client is not None:
                client.close()
        self._client = None
        self._jump_client = None
