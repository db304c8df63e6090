"""A private one-node Slurm cluster with fake GPUs, inside a test host's namespace.

munged (its own key and socket), slurmctld and slurmd (Debian's Slurm 22.05)
run in the test host's network namespace, listening on its address, so the
host's sshd is the cluster's login node: over SSH, ``sbatch``, ``squeue``,
``scancel``, ``scontrol`` and ``sinfo`` reach this cluster (wrappers in the
host's bin folder, first on the sessions' PATH, set SLURM_CONF). The node has
4 GPUs: character devices made with mknod, named in gres.conf. Jobs run as
the login user, on this machine's file system: the cluster's work_dir is the
same folder for the login node and for jobs.

Each cluster has its own folder, munge socket and ports (from the slot
number), so clusters of several test workers run side by side. ``up``
records its daemons' pid files; ``down`` stops them by those PIDs, removes
the wrappers and deletes the folder. Used by the ``slurm_host`` fixture
(tests/conftest.py) and ``scripts/test-host up --slurm``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from slots import alive, remove_tree, terminate
from testhost import TestHost

MUNGED = Path("/usr/sbin/munged")
SLURMCTLD = Path("/usr/sbin/slurmctld")
SLURMD = Path("/usr/sbin/slurmd")
# Client programs the login node's wrappers cover.
CLIENTS = ("sbatch", "srun", "salloc", "squeue", "scancel", "scontrol", "sinfo", "sacct")
GPUS = 4
PARTITION = "gpu"
BASE_PORT = 26800
DAEMONS = ("slurmd", "slurmctld", "munged")


@dataclass
class SlurmCluster:
    """A running cluster and what a client or a target needs to use it."""

    root: Path
    name: str
    node: str
    address: str
    netns: str
    ctld_port: int
    slurmd_port: int
    wrapper_dir: Path
    partition: str = PARTITION
    gpus: int = GPUS
    wrappers: list[Path] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment of a client on this machine (not over SSH): SLURM_CONF."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    @property
    def work_dir(self) -> Path:
        """The cluster's shared work dir (same files on the login node and in jobs)."""
        return self.root / "work"

    @property
    def activate(self) -> Path:
        """A script that, sourced, makes ``python`` Debian's python3 (like a venv's)."""
        return self.root / "env" / "bin" / "activate"

    def client(self, program: str, *args: str, check: bool = True) -> str:
        """Run a Slurm client on this machine against this cluster; its stdout.

        Raises:
            RuntimeError: With ``check``, the client exited non-zero.
        """
        done = subprocess.run(
            [program, *args], env=self.env, capture_output=True, text=True, timeout=30
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def set_node(self, state: str, reason: str = "test") -> None:
        """Fault injection: ``down`` (running jobs fail: NODE_FAIL), ``drain`` or ``resume``."""
        args = ["update", f"nodename={self.node}", f"state={state}"]
        if state.lower() != "resume":
            args.append(f"reason={reason}")
        self.client("scontrol", *args)

    def expire(self, job_id: str) -> None:
        """Fault injection: the running job's time limit is up now.

        Slurm keeps time limits in whole minutes and checks them every 30 s,
        so ``--time`` cannot be shorter than a minute: this sets the job's
        EndTime to now, as an admin shortening it would; slurmctld ends it
        with TIMEOUT (Reason TimeLimit) at its next check (within 30 s).
        """
        self.client("scontrol", "update", f"jobid={job_id}", "EndTime=now")

    def node_state(self) -> str:
        """The node's state as sinfo shows it (e.g. idle, mixed, alloc, down*)."""
        return self.client("sinfo", "-h", "-n", self.node, "-o", "%t").strip()

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, Reason, ExitCode, ...); {} if forgotten."""
        done = subprocess.run(
            ["scontrol", "-o", "show", "job", job_id],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        fields: dict[str, str] = {}
        for word in done.stdout.split():
            key, _, value = word.partition("=")
            fields.setdefault(key, value)
        return fields

    def overrides(self, login: dict[str, str]) -> list[str]:
        """The cosmos-batch overrides for ``target=slurm`` (issue 17, point 1).

        Args:
            login: ``host``, ``port``, ``user``, ``key_file``, ``known_hosts``
                of the login node's sshd.
        """
        values = {
            "target": "slurm",
            "target.name": "test-slurm",
            **{f"target.login.{key}": value for key, value in login.items()},
            "target.partition": self.partition,
            "target.gres": "gpu",
            "target.max_gpus": str(self.gpus),
            "target.work_dir": str(self.work_dir),
            "target.launcher": "bare",
            "target.setup": f". {self.activate}",
            "target.python": "python",
        }
        return [f"{key}={value}" for key, value in values.items()]


def login(host: TestHost) -> dict[str, str]:
    """How to reach the login node (the test host's sshd), as target keys."""
    return {
        "host": host.address,
        "port": str(host.sshd.port),
        "user": host.sshd.user,
        "key_file": str(host.sshd.client_key),
        "known_hosts": str(host.sshd.known_hosts),
    }


def on_host(host: TestHost, slot_number: int, pass_fds: tuple[int, ...] = ()) -> SlurmCluster:
    """A cluster in ``host``'s namespace (folder ``<host>/slurm``), its sshd the login node."""
    return up(
        host.state_dir / "slurm",
        netns=host.netns,
        address=host.address,
        slot_number=slot_number,
        wrapper_dir=host.bin_dir,
        pass_fds=pass_fds,
    )


def ports(slot_number: int) -> tuple[int, int]:
    """slurmctld's and slurmd's ports for a slot (distinct for every slot)."""
    return BASE_PORT + 2 * slot_number, BASE_PORT + 2 * slot_number + 1


def _slurm_conf(cluster: SlurmCluster) -> str:
    root, node = cluster.root, cluster.node
    lines = {
        "ClusterName": cluster.name,
        # The node name resolves to the namespace's address for Slurm (no DNS needed).
        "SlurmctldHost": f"{node}({cluster.address})",
        "SlurmctldPort": cluster.ctld_port,
        "SlurmdPort": cluster.slurmd_port,
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={root / 'munge' / 'munge.sock'}",
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldPidFile": root / "slurmctld.pid",
        "SlurmdPidFile": root / "slurmd.pid",
        "SlurmctldLogFile": root / "slurmctld.log",
        "SlurmdLogFile": root / "slurmd.log",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core",
        "GresTypes": "gpu",
        # A node set down by an admin (a test) stays down until resumed.
        "ReturnToService": 1,
        "MpiDefault": "none",
        "JobAcctGatherType": "jobacct_gather/none",
        "SlurmdParameters": "config_overrides",
        # Quick to kill (SIGTERM -> SIGKILL) and quick to see a node come back.
        "KillWait": 2,
        "SlurmdTimeout": 30,
        "MinJobAge": 300,
        "MailProg": "/bin/true",
        # Start a submitted batch job at once (by default up to 3 s later), and
        # look at waiting jobs every 2 s (by default 60 s: a job waiting for a
        # node set down could wait a minute after the node is resumed).
        "SchedulerParameters": "batch_sched_delay=0,sched_interval=2",
    }
    text = "".join(f"{key}={value}\n" for key, value in lines.items())
    text += (
        f"NodeName={node} NodeAddr={cluster.address} NodeHostname={node} "
        f"CPUs=8 RealMemory=4000 Gres=gpu:{cluster.gpus} State=UNKNOWN\n"
        f"PartitionName={cluster.partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP\n"
    )
    return text


def _write_files(cluster: SlurmCluster) -> None:
    root = cluster.root
    for sub in ("state", "spool", "munge", "dev", "work", "env/bin"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # Clients of any user reach the socket; only root reads the key.
    (root / "munge").chmod(0o755)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o600)
    for index in range(cluster.gpus):
        # Fake GPUs: character devices with NVIDIA's major number are enough for gres/gpu.
        os.mknod(root / "dev" / f"nvidia{index}", 0o666 | 0o020000, os.makedev(195, index))
    (root / "gres.conf").write_text(
        f"NodeName={cluster.node} Name=gpu File={root / 'dev'}/nvidia[0-{cluster.gpus - 1}]\n"
    )
    cluster.conf.write_text(_slurm_conf(cluster))
    # A stand-in environment (like a venv or `module load`): only after sourcing
    # it is `python` found (Debian has python3 only).
    python = root / "env" / "bin" / "python"
    python.symlink_to("/usr/bin/python3")
    cluster.activate.write_text(f'export PATH="{python.parent}:$PATH"\n')


def _write_wrappers(cluster: SlurmCluster) -> None:
    """Wrappers on the login node's PATH that point the clients at this cluster."""
    cluster.wrapper_dir.mkdir(parents=True, exist_ok=True)
    for program in CLIENTS:
        real = shutil.which(program, path="/usr/bin:/usr/sbin")
        if real is None:
            continue
        wrapper = cluster.wrapper_dir / program
        wrapper.write_text(
            f'#!/bin/sh\nSLURM_CONF="{cluster.conf}"\nexport SLURM_CONF\nexec {real} "$@"\n'
        )
        wrapper.chmod(0o755)
        cluster.wrappers.append(wrapper)
    (cluster.root / "wrappers").write_text("".join(f"{w}\n" for w in cluster.wrappers))


def _in_node(cluster: SlurmCluster, argv: list[str]) -> list[str]:
    """``argv`` on the node: in the namespace, with the node's name as its host name.

    slurmctld refuses to run on a host whose name is not SlurmctldHost's; a
    UTS namespace of its own gives the daemons (and jobs) the node's name.
    nsenter enters the network namespace only: `ip netns exec` would also
    remount /sys.
    """
    inner = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', cluster.node, *argv]
    return ["nsenter", f"--net=/run/netns/{cluster.netns}", *inner]


def _spawn(
    cluster: SlurmCluster, argv: list[str], log: str, pass_fds: tuple[int, ...]
) -> subprocess.Popen:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SLURM_CONF": str(cluster.conf)}
    return subprocess.Popen(
        _in_node(cluster, argv),
        stdout=subprocess.DEVNULL,
        stderr=(cluster.root / log).open("w"),
        stdin=subprocess.DEVNULL,
        env=env,
        pass_fds=pass_fds,
        start_new_session=True,
    )


def _wait(
    cluster: SlurmCluster,
    what: str,
    ready: Callable[[], bool],
    daemons: dict[str, subprocess.Popen],
    timeout_s: float = 30,
) -> None:
    """Wait until ``ready()``; fail with the logs when a daemon exits or time is up."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        exited = [name for name, process in daemons.items() if process.poll() is not None]
        if exited or time.monotonic() > deadline:
            logs = "".join(
                f"--- {path.name}\n{path.read_text()[-2000:]}\n"
                for path in sorted([*cluster.root.glob("*.log"), *cluster.root.glob("*.stderr")])
            )
            problem = f"{', '.join(exited)} exited" if exited else f"not up in {timeout_s}s"
            raise RuntimeError(f"{what}: {problem}:\n{logs}")
        time.sleep(0.05)


def up(
    root: Path,
    *,
    netns: str,
    address: str,
    slot_number: int,
    wrapper_dir: Path,
    pass_fds: tuple[int, ...] = (),
) -> SlurmCluster:
    """Start munged, slurmctld and slurmd; wait until the node is idle.

    Args:
        root: The cluster's own folder (``down`` deletes it).
        netns: The network namespace the daemons run in (the test host's).
        address: The address slurmctld and slurmd listen on (the namespace's).
        slot_number: Chooses the ports (distinct per slot).
        wrapper_dir: A folder first on the login node's PATH: the client wrappers go there.
        pass_fds: Kept open in the daemons (e.g. a slot lock they hold while they run).

    Raises:
        RuntimeError: A package is missing, or a daemon did not come up
            (everything made so far is removed again).
    """
    missing = [str(p) for p in (MUNGED, SLURMCTLD, SLURMD) if not p.is_file()]
    if missing or shutil.which("sbatch") is None:
        raise RuntimeError(
            f"Slurm or munge is not installed ({', '.join(missing) or 'sbatch'}): "
            "run scripts/install-system-deps (make test does it)"
        )
    root = root.resolve()
    if (root / "wrappers").exists():
        raise RuntimeError(f"a Slurm cluster is up in {root} already")
    node = f"node{slot_number}"
    ctld_port, slurmd_port = ports(slot_number)
    cluster = SlurmCluster(
        root, f"t{slot_number}", node, address, netns, ctld_port, slurmd_port, wrapper_dir
    )
    try:
        _write_files(cluster)
        _write_wrappers(cluster)
        _start(cluster, pass_fds)
    except BaseException:
        down(root)
        raise
    return cluster


def _start(cluster: SlurmCluster, pass_fds: tuple[int, ...]) -> None:
    munge = cluster.root / "munge"
    munged = _spawn(
        cluster,
        [
            str(MUNGED),
            "--foreground",
            "--force",
            f"--key-file={munge / 'munge.key'}",
            f"--socket={munge / 'munge.sock'}",
            f"--pid-file={cluster.root / 'munged.pid'}",
            f"--log-file={cluster.root / 'munged.log'}",
            f"--seed-file={munge / 'munged.seed'}",
        ],
        "munged.stderr",
        pass_fds,
    )
    _wait(cluster, "munged", (munge / "munge.sock").exists, {"munged": munged})
    daemons = {"munged": munged}
    daemons["slurmctld"] = _spawn(
        cluster, [str(SLURMCTLD), "-D", "-i", "-f", str(cluster.conf)], "slurmctld.stderr", pass_fds
    )
    daemons["slurmd"] = _spawn(
        cluster,
        [str(SLURMD), "-D", "-N", cluster.node, "-f", str(cluster.conf)],
        "slurmd.stderr",
        pass_fds,
    )
    _wait(cluster, "the Slurm node", lambda: _idle(cluster), daemons)


def _idle(cluster: SlurmCluster) -> bool:
    done = subprocess.run(
        ["sinfo", "-h", "-n", cluster.node, "-o", "%t"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout.strip() == "idle"


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def down(root: Path) -> None:
    """Stop the cluster's daemons by the PIDs in their pid files, remove its wrappers
    and delete its folder (idempotent; job steps left behind go with the test host's
    namespace)."""
    root = root.resolve()
    pids = {_pid(root / f"{daemon}.pid") for daemon in DAEMONS} - {None}
    terminate(pid for pid in pids if alive(pid))
    listed = root / "wrappers"
    if listed.is_file():
        for line in listed.read_text().splitlines():
            Path(line).unlink(missing_ok=True)
    remove_tree(root)
