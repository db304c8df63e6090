"""DockerCommandBuilder and DockerExecutor: containers as argument lists.

The builder turns a :class:`ContainerSpec` into argument lists for ``docker``
or ``podman``; the executor runs them through any command runner (local or
remote). Containers start detached with a unique name and labels, so a
runner that died can find them again by label instead of starting twice.
Images are never pulled implicitly (``--pull=never``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from cosmos_workflow.connection.local import CommandResult
from cosmos_workflow.errors import ExecutionFailure, RuntimeFailure, ValidationFailure

Runtime = Literal["docker", "podman"]
LABEL_PREFIX = "io.cosmos-workflow."


class CommandRunner(Protocol):
    """What the executor needs of a local or remote command executor."""

    def run(
        self, argv: list[str], *, timeout: float | None = ..., env: dict[str, str] | None = ...
    ) -> CommandResult:
        """Run and collect."""

    def stream(
        self,
        argv: list[str],
        on_line: Callable[[str], None],
        *,
        env: dict[str, str] | None = ...,
    ) -> int:
        """Run and pass each output line on."""


@dataclass(frozen=True)
class ContainerSpec:
    """One container to start.

    Attributes:
        name: Unique container name.
        image: Image reference (must already be on the host).
        argv: The command inside the container.
        labels: Label name (without prefix) -> value.
        gpus: GPU indices to expose; None adds no GPU flags (a test host).
        mounts: Host path -> container path.
        read_only: Host path -> container path, mounted read-only.
        env: Environment variables inside the container.
        workdir: Working directory inside the container.
        shm_size: e.g. "16g".
        ipc: e.g. "host".
        network: e.g. "none" or "host"; None keeps the runtime's default.
    """

    name: str
    image: str
    argv: list[str]
    labels: Mapping[str, str] = field(default_factory=dict)
    gpus: list[int] | None = None
    mounts: Mapping[str, str] = field(default_factory=dict)
    read_only: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    shm_size: str | None = None
    ipc: str | None = None
    network: str | None = None


@dataclass(frozen=True)
class ContainerInfo:
    """A container found by label.

    Attributes:
        name: Container name.
        state: The runtime's state (running, exited, ...).
        labels: Our labels, without the prefix (filled by :meth:`DockerExecutor.list_ours`).
    """

    name: str
    state: str
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        """True while the container runs."""
        return self.state == "running"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "state": self.state, "labels": dict(self.labels)}


class DockerCommandBuilder:
    """Argument lists for one container runtime.

    Args:
        runtime: ``docker`` or ``podman``.
    """

    def __init__(self, runtime: Runtime = "docker") -> None:
        if runtime not in ("docker", "podman"):
            raise ValidationFailure(f"target.runtime must be docker or podman, got {runtime!r}")
        self.runtime = runtime

    def run(self, spec: ContainerSpec) -> list[str]:
        """``run -d`` with name, labels, GPUs, resources, mounts and env."""
        argv = [self.runtime, "run", "-d", "--pull=never", "--name", spec.name]
        for key, value in sorted(spec.labels.items()):
            argv += ["--label", f"{LABEL_PREFIX}{key}={value}"]
        argv += self._gpu_flags(spec.gpus)
        if spec.shm_size:
            argv += ["--shm-size", spec.shm_size]
        if spec.ipc:
            argv += ["--ipc", spec.ipc]
        if spec.network:
            argv += ["--network", spec.network]
        mounts = [(h, c, "") for h, c in sorted(spec.mounts.items())]
        mounts += [(h, c, ":ro") for h, c in sorted(spec.read_only.items())]
        for host, container, mode in mounts:
            if ":" in host or ":" in container:
                raise ValidationFailure(f"mount paths may not contain ':': {host} -> {container}")
            argv += ["-v", f"{host}:{container}{mode}"]
        for key, value in sorted(spec.env.items()):
            argv += ["-e", f"{key}={value}"]
        if spec.workdir:
            argv += ["-w", spec.workdir]
        return [*argv, spec.image, *spec.argv]

    def _gpu_flags(self, gpus: list[int] | None) -> list[str]:
        if gpus is None:
            return []
        if self.runtime == "podman":
            return [flag for index in gpus for flag in ("--device", f"nvidia.com/gpu={index}")]
        devices = ",".join(str(index) for index in gpus)
        # docker parses --gpus as CSV: the quotes keep "device=0,1" one field.
        return ["--gpus", f'"device={devices}"']

    def logs(self, name: str, follow: bool = True) -> list[str]:
        """Print (and follow) a container's output."""
        return [self.runtime, "logs", *(["-f"] if follow else []), name]

    def wait(self, name: str) -> list[str]:
        """Block until the container exits; prints its exit code."""
        return [self.runtime, "wait", name]

    def kill(self, name: str) -> list[str]:
        """Stop the container now."""
        return [self.runtime, "kill", name]

    def remove(self, name: str) -> list[str]:
        """Remove the container (whatever its state)."""
        return [self.runtime, "rm", "-f", name]

    def find(self, labels: Mapping[str, str]) -> list[str]:
        """List containers (running or not) that carry all ``labels``."""
        argv = [self.runtime, "ps", "-a"]
        for key, value in sorted(labels.items()):
            argv += ["--filter", f"label={LABEL_PREFIX}{key}={value}"]
        return [*argv, "--format", "{{json .Names}}\t{{json .State}}"]

    def list_ours(self) -> list[str]:
        """Names of every container (running or not) that carries our job label."""
        return [
            self.runtime,
            "ps",
            "-a",
            "--filter",
            f"label={LABEL_PREFIX}job",
            "--format",
            "{{json .Names}}",
        ]

    def inspect(self, names: list[str]) -> list[str]:
        """Name, state and labels of containers, one tab-separated JSON line each."""
        template = "{{json .Name}}\t{{json .State.Status}}\t{{json .Config.Labels}}"
        return [self.runtime, "inspect", "--type", "container", "--format", template, *names]


class DockerExecutor:
    """Starts, follows, waits for, kills and finds containers.

    Args:
        runner: Runs the argument lists (LocalCommandExecutor or RemoteCommandExecutor).
        builder: Builds them for the target's runtime.
        env: Environment for the runtime client (e.g. DOCKER_HOST), if any.
    """

    def __init__(
        self,
        runner: CommandRunner,
        builder: DockerCommandBuilder,
        env: dict[str, str] | None = None,
    ) -> None:
        self._runner = runner
        self._builder = builder
        self._env = env

    def _run(self, argv: list[str], timeout: float | None = 120.0) -> CommandResult:
        return self._runner.run(argv, timeout=timeout, env=self._env)

    def start(self, spec: ContainerSpec) -> str:
        """Start a container detached; return its id.

        Raises:
            ExecutionFailure: the runtime refused (image missing, name taken, ...).
        """
        done = self._run(self._builder.run(spec))
        if done.exit_code != 0:
            message = f"{self._builder.runtime} could not start {spec.name}: {done.stderr.strip()}"
            if runtime_unavailable(done.stderr):
                raise RuntimeFailure(message)
            raise ExecutionFailure(message)
        return done.stdout.strip()

    def follow_logs(self, name: str, on_line: Callable[[str], None], follow: bool = True) -> None:
        """Pass the container's output to ``on_line``; with ``follow``, until it exits."""
        self._runner.stream(self._builder.logs(name, follow=follow), on_line, env=self._env)

    def wait(self, name: str) -> int:
        """The container's exit code, once it has exited.

        Raises:
            ExecutionFailure: the container does not exist.
        """
        done = self._run(self._builder.wait(name), timeout=None)
        if done.exit_code != 0 or not done.stdout.strip().lstrip("-").isdigit():
            raise ExecutionFailure(f"cannot wait for container {name}: {done.stderr.strip()}")
        return int(done.stdout.strip())

    def kill(self, name: str) -> bool:
        """Kill a running container; False if it was not running."""
        return self._run(self._builder.kill(name)).exit_code == 0

    def remove(self, name: str) -> None:
        """Remove a container if it exists."""
        self._run(self._builder.remove(name))

    def find(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        """Containers carrying every one of ``labels``.

        Raises:
            ExecutionFailure: the runtime could not list containers.
        """
        done = self._run(self._builder.find(labels))
        if done.exit_code != 0:
            raise ExecutionFailure(f"cannot list containers: {done.stderr.strip()}")
        found = []
        for line in done.stdout.splitlines():
            names, _, state = line.partition("\t")
            name = json.loads(names)
            found.append(
                ContainerInfo(name[0] if isinstance(name, list) else name, json.loads(state))
            )
        return found

    def list_ours(self) -> list[ContainerInfo]:
        """Every container of ours on the host (running or not), with its labels.

        Raises:
            ExecutionFailure: the runtime could not list containers.
        """
        done = self._run(self._builder.list_ours())
        if done.exit_code != 0:
            raise ExecutionFailure(f"cannot list containers: {done.stderr.strip()}")
        names = [_first_name(json.loads(line)) for line in done.stdout.splitlines() if line]
        if not names:
            return []
        # A container removed since the listing makes inspect fail for it only.
        inspected = self._run(self._builder.inspect(names))
        return [_inspected(line) for line in inspected.stdout.splitlines() if line.strip()]


# What the docker and podman clients say when their daemon or service is not there.
_RUNTIME_DOWN = (
    "cannot connect to the docker daemon",
    "is the docker daemon running",
    "error during connect",
    "cannot connect to podman",
    "connection refused",
)


def runtime_unavailable(stderr: str) -> bool:
    """True if a runtime client's error says its daemon could not be reached (transient)."""
    text = stderr.lower()
    return any(sign in text for sign in _RUNTIME_DOWN)


def _first_name(names: str | list[str]) -> str:
    return names[0] if isinstance(names, list) else names.split(",")[0]


def _inspected(line: str) -> ContainerInfo:
    name, state, labels = (json.loads(part) for part in line.split("\t"))
    ours = {
        key[len(LABEL_PREFIX) :]: value
        for key, value in (labels or {}).items()
        if key.startswith(LABEL_PREFIX)
    }
    return ContainerInfo(name.lstrip("/"), state, ours)
