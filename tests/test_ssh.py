"""SSHManager, RemoteCommandExecutor and BashScriptBuilder against a real sshd."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sshd import Sshd, free_port, keygen, start_sshd

from cosmos_workflow.connection.remote import RemoteCommandError, RemoteCommandExecutor
from cosmos_workflow.connection.scripts import BashScriptBuilder
from cosmos_workflow.connection.ssh import HostKeyFailure, SSHEndpoint, SSHManager, parse_jump
from cosmos_workflow.errors import AuthFailure, CosmosError, ExecutionFailure, NetworkFailure
from cosmos_workflow.transfer.files import FileTransferService

# Text that a shell would love to interpret. Every value must arrive intact.
INJECTION_CORPUS = [
    "it's a 'quoted' \"street\"",
    "$(touch {canary})",
    "`touch {canary}`",
    "; touch {canary}",
    "&& touch {canary}",
    "| touch {canary}",
    "line one\nline two; touch {canary}",
    "  spaces  and\ttabs ",
    "*.mp4 ? [a-z]",
    "$HOME ${PATH} $((1+1))",
    "non-ASCII: rue de l'\u00e9t\u00e9, \u6771\u4eac, \U0001f3ac",
    "-n",
    "",
    "back\\slash \\n",
]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Sshd:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def endpoint(server: Sshd, **changes) -> SSHEndpoint:
    fields = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "key_file": server.client_key,
        "known_hosts": server.known_hosts,
        "connect_timeout": 5.0,
    }
    fields.update(changes)
    return SSHEndpoint(**fields)


def in_threads(work: Callable[[int], None], count: int) -> None:
    """Call ``work(0)`` ... ``work(count - 1)`` at once, each in a thread; wait for all."""
    threads = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_runs_commands_and_returns_exit_code_and_output(sshd: Sshd) -> None:
    with SSHManager(endpoint(sshd)) as ssh:
        remote = RemoteCommandExecutor(ssh)
        done = remote.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (done.exit_code, done.stdout, done.stderr) == (3, "out\n", "err\n")
        assert remote.run(["cat"], stdin=b"piped bytes").stdout == "piped bytes"
        assert remote.run(["printenv", "COSMOS_X"], env={"COSMOS_X": "a b"}).stdout == "a b\n"
        with pytest.raises(RemoteCommandError, match="exit code 1"):
            remote.run(["false"], check=True)


def test_the_connection_prefers_aes_gcm_and_sends_without_delay(sshd: Sshd) -> None:
    with SSHManager(endpoint(sshd)) as ssh:
        transport = ssh.transport()
        assert transport.local_cipher == transport.remote_cipher == "aes128-gcm@openssh.com"
        assert transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_streams_lines_as_they_come(sshd: Sshd) -> None:
    lines: list[str] = []
    with SSHManager(endpoint(sshd)) as ssh:
        code = RemoteCommandExecutor(ssh).stream(
            ["sh", "-c", "for i in 1 2 3; do echo line $i; done; echo oops >&2; exit 4"],
            lines.append,
        )
    assert code == 4
    assert lines == ["line 1", "line 2", "line 3", "oops"]


def test_timeout_is_a_classified_error(sshd: Sshd) -> None:
    with SSHManager(endpoint(sshd)) as ssh, pytest.raises(RemoteCommandError, match="timed out"):
        RemoteCommandExecutor(ssh).run(["sleep", "5"], timeout=0.5)


def test_every_argument_arrives_intact_and_nothing_executes(sshd: Sshd, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    values = [v.replace("{canary}", str(canary)) for v in INJECTION_CORPUS]
    with SSHManager(endpoint(sshd)) as ssh:
        remote = RemoteCommandExecutor(ssh)
        done = remote.run(["printf", "%s\\0", *values], check=True)
        assert done.stdout.split("\0")[:-1] == values
        script = BashScriptBuilder().export("VALUE", values[1])
        for value in values:
            script.run("printf", "%s\\0", value)
        script.run("printenv", "VALUE")
        scripted = remote.run(script.argv(), check=True).stdout
        assert scripted.split("\0")[:-1] == values
        assert scripted.endswith(values[1] + "\n")
    assert not canary.exists(), "a value was executed by a shell"


def test_one_connection_serves_many_threads(sshd: Sshd) -> None:
    results: dict[int, str] = {}
    errors: list[BaseException] = []
    with SSHManager(endpoint(sshd)) as ssh:
        remote = RemoteCommandExecutor(ssh)

        def work(index: int) -> None:
            try:
                results[index] = remote.run(["echo", str(index)]).stdout.strip()
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        in_threads(work, 16)
        transport = ssh.transport()
    assert not errors
    assert results == {i: str(i) for i in range(16)}
    assert not transport.is_active(), "the connection was not closed on exit"


def test_bursts_of_short_commands_from_a_busy_process_never_drop_the_connection(
    tmp_path: Path,
) -> None:
    # A runner is busy (many threads, CPU work) while its threads send short
    # commands over one connection. Any message that reached sshd for a
    # channel it had closed (the EOF of a command that ended before its thread
    # got round to sending it) made sshd drop the connection ("ieof packet
    # referred to nonexistent channel") with every command on it: commands
    # given no input, commands that fail before reading their input, and
    # downloads of a file that is not there. A thread that spins here makes
    # such late messages likely: the old code lost the connection in more
    # than half the rounds.
    sshd = start_sshd(tmp_path / "sshd")
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    def commands(remote: RemoteCommandExecutor, files: FileTransferService, index: int) -> None:
        for step in range(3):
            assert remote.run(["true"]).exit_code == 0
            assert remote.run(["sh", "-c", "exit 3"], stdin=b"never read").exit_code == 3
            with pytest.raises(ExecutionFailure, match="no readable file"):
                files.download(f"/nonexistent/{index}-{step}", tmp_path / "never")

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        for _ in range(2):
            errors: list[BaseException] = []
            with SSHManager(endpoint(sshd)) as ssh:
                remote = RemoteCommandExecutor(ssh)
                files = FileTransferService(ssh, remote, retries=1)

                def work(index: int, remote=remote, files=files, errors=errors) -> None:
                    try:
                        commands(remote, files, index)
                    except (CosmosError, AssertionError, pytest.fail.Exception) as exc:
                        errors.append(exc)

                in_threads(work, 16)
            assert errors == []
    finally:
        stop.set()
        spinner.join()
        sshd.stop()
    assert "nonexistent channel" not in (sshd.root / "sshd.log").read_text()


def test_a_command_given_no_input_reads_none(sshd: Sshd) -> None:
    # It is sent no EOF: its input must be empty of itself, or it would wait.
    with SSHManager(endpoint(sshd)) as ssh:
        remote = RemoteCommandExecutor(ssh)
        began = time.monotonic()
        assert remote.run(["sh", "-c", "cat; echo read-all"], timeout=10).stdout == "read-all\n"
        lines: list[str] = []
        assert remote.stream(["sh", "-c", "cat; echo read-all"], lines.append, timeout=10) == 0
        assert lines == ["read-all"] and time.monotonic() - began < 5


def test_a_dropped_connection_is_reopened(sshd: Sshd) -> None:
    with SSHManager(endpoint(sshd)) as ssh:
        remote = RemoteCommandExecutor(ssh)
        first = ssh.transport()
        first.close()
        assert remote.run(["echo", "back"]).stdout == "back\n"
        assert ssh.transport() is not first


def test_a_connection_dropped_mid_command_is_a_network_failure(sshd: Sshd) -> None:
    with SSHManager(endpoint(sshd)) as ssh:
        remote = RemoteCommandExecutor(ssh)
        remote.run(["true"])
        timer = threading.Timer(0.5, lambda: ssh.transport().close())
        timer.start()
        with pytest.raises(NetworkFailure, match="dropped"):
            remote.run(["sleep", "5"], timeout=20)
        timer.join()
        assert remote.run(["echo", "again"]).stdout == "again\n"


def test_a_drop_mid_command_is_a_network_failure_even_once_the_connection_is_back(
    sshd: Sshd,
) -> None:
    # A runner's threads share one connection: another thread may open it
    # again before a command on the dropped one sees that its channel ended
    # without an exit status. That command was lost to the network; it did
    # not exit with -1. Here the command's own line handler drops and reopens
    # the connection, so the command sees its end only once it is back.
    with SSHManager(endpoint(sshd)) as ssh:
        remote = RemoteCommandExecutor(ssh)
        first = ssh.transport()

        def on_line(line: str) -> None:
            if line == "started":
                first.close()
                ssh.connect()

        with pytest.raises(NetworkFailure, match="dropped"):
            remote.stream(["sh", "-c", "echo started; sleep 10"], on_line, timeout=30)
        assert ssh.transport() is not first
        assert remote.run(["echo", "again"]).stdout == "again\n"


def test_a_command_killed_by_a_signal_is_no_network_failure(sshd: Sshd) -> None:
    # Killed by a signal, a streamed command (its frame becomes the command)
    # ends without an exit status, as after a dropped connection; but sshd
    # sent the channel's EOF first.
    with SSHManager(endpoint(sshd)) as ssh:
        remote = RemoteCommandExecutor(ssh)
        lines: list[str] = []
        code = remote.stream(["sh", "-c", "echo dying; kill -9 $$"], lines.append)
        assert (code, lines) == (-1, ["dying"])
        assert remote.run(["echo", "alive"]).stdout == "alive\n"


def test_unknown_host_is_refused_with_instructions(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyFailure) as caught:
        SSHManager(endpoint(sshd, known_hosts=empty)).connect()
    message = str(caught.value)
    assert f"[{sshd.host}]:{sshd.port}" in message and str(empty) in message
    assert "ssh-keyscan" in message
    assert caught.value.exit_code == 3
    assert empty.read_text() == "", "the host key was added"


def test_a_changed_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other")
    public = (tmp_path / "other.pub").read_text().split()
    forged = tmp_path / "known_hosts"
    forged.write_text(f"[{sshd.host}]:{sshd.port} {public[0]} {public[1]}\n")
    assert other.exists()
    with pytest.raises(HostKeyFailure) as caught:
        SSHManager(endpoint(sshd, known_hosts=forged)).connect()
    assert "does NOT match" in str(caught.value) and str(forged) in str(caught.value)
    assert caught.value.exit_code == 3


def test_a_wrong_user_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(AuthFailure) as caught:
        SSHManager(endpoint(sshd, key_file=stranger)).connect()
    assert not isinstance(caught.value, HostKeyFailure)
    assert "authentication" in str(caught.value) and str(stranger) in str(caught.value)
    assert caught.value.exit_code == 3


def test_a_closed_port_is_a_network_failure(sshd: Sshd) -> None:
    closed = free_port()
    lines = sshd.known_hosts.read_text().replace(f":{sshd.port}]", f":{closed}]")
    known = sshd.root / "known_closed"
    known.write_text(lines.replace(f"]:{sshd.port}", f"]:{closed}"))
    with pytest.raises(NetworkFailure) as caught:
        SSHManager(endpoint(sshd, port=closed, known_hosts=known)).connect()
    assert not isinstance(caught.value, AuthFailure)
    assert caught.value.exit_code == 3


def test_a_jump_host_tunnels_the_connection(sshd: Sshd) -> None:
    target = endpoint(sshd)
    jump = parse_jump(f"{sshd.user}@{sshd.host}:{sshd.port}", target)
    with SSHManager(target, jump=jump) as ssh:
        done = RemoteCommandExecutor(ssh).run(["sh", "-c", "echo $SSH_CONNECTION"])
    # Through the tunnel the server sees the jump host's own connection.
    assert done.exit_code == 0 and sshd.host in done.stdout


def test_bad_jump_specs_are_rejected(sshd: Sshd) -> None:
    from cosmos_workflow.errors import ValidationFailure

    for spec in ("", "user@", "host:port"):
        with pytest.raises(ValidationFailure):
            parse_jump(spec, endpoint(sshd))


def raw_exec(ssh: SSHManager, command: str) -> tuple[bytes, bytes]:
    """stdout and stderr of ``command`` run as the host's shell receives it, unframed."""
    channel = ssh.open_session(timeout=10)
    channel.exec_command(command)
    channel.shutdown_write()
    out = bytearray()
    while data := channel.recv(1 << 16):
        out.extend(data)
    err = bytearray()
    while data := channel.recv_stderr(1 << 16):
        err.extend(data)
    channel.recv_exit_status()
    channel.close()
    return bytes(out), bytes(err)


def test_the_test_hosts_login_shell_prints_on_both_streams(sshd: Sshd) -> None:
    # The remote suite runs against a noisy shell; this proves it is noisy.
    with SSHManager(endpoint(sshd)) as ssh:
        out, err = raw_exec(ssh, "echo answer")
    assert out.startswith(b"Welcome to gpu-host-1") and out.endswith(b"activatedanswer\n")
    assert b"module: no newline" in err


def test_answers_and_lines_never_carry_the_login_shells_noise(
    sshd: Sshd, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="cosmos_workflow.connection.remote")
    lines: list[str] = []
    with SSHManager(endpoint(sshd)) as ssh:
        remote = RemoteCommandExecutor(ssh)
        for _ in range(3):
            done = remote.run(["sh", "-c", "printf out; printf err >&2"])
            assert (done.exit_code, done.stdout, done.stderr) == (0, "out", "err")
        assert remote.run(["true"]).stdout == remote.run(["true"]).stderr == ""
        assert remote.run(["printf", "\\n\\nx\\n\\n"]).stdout == "\n\nx\n\n"
        remote.stream(["sh", "-c", "echo a; echo b >&2; printf c"], lines.append)
    assert sorted(lines) == ["a", "b", "c"]
    noted = [r for r in caplog.records if "prints around our commands" in r.getMessage()]
    assert len(noted) == 1 and noted[0].levelname == "DEBUG"
    assert "pyenv" in noted[0].getMessage() and "module: no newline" in noted[0].getMessage()


def test_values_set_for_a_command_are_never_logged_nor_in_its_errors(
    sshd: Sshd, caplog: pytest.LogCaptureFixture
) -> None:
    """target.env carries secrets (HF_TOKEN): the command gets them, logs and messages do not."""
    secret = "hf_s3cret-Value"
    with caplog.at_level(logging.DEBUG), SSHManager(endpoint(sshd)) as ssh:
        remote = RemoteCommandExecutor(ssh)
        done = remote.run(["printenv", "HF_TOKEN"], env={"HF_TOKEN": secret})
        assert done.stdout == secret + "\n"
        # A container runtime's -e flags, as DockerCommandBuilder writes them.
        done = remote.run(["sh", "-c", 'echo "$2"', "run", "-e", f"HF_TOKEN={secret}"])
        assert done.stdout == f"HF_TOKEN={secret}\n"
        with pytest.raises(RemoteCommandError) as failed:
            remote.run(["sleep", "5"], timeout=0.5, env={"HF_TOKEN": secret})
    assert secret not in str(failed.value)
    assert "HF_TOKEN" in caplog.text and secret not in caplog.text
