"""Run a student's notebook in its own limited Jupyter kernel and bring back plain values.

The kernel starts in its own sandbox (:mod:`.sandbox`: bubblewrap, no network, only ZMQ ``ipc``
sockets in its private runtime folder, reached from here through ``/proc/<pid>/root``) under a
memory cap (RLIMIT_AS, plus the submission's cgroup) and a file-size cap, each cell has a time
limit and so does the whole notebook, and the output the kernel may send is capped (beyond
``max_output`` bytes outputs are dropped; beyond ten times that the kernel is killed).  After
the last cell the values of the requested names are written with ``serialize.dump_names`` and
decoded here without unpickling anything.

The grader's side connects to the kernel's sockets once, when all of them listen, and never
reconnects (no heartbeat channel either): a reconnect would look the socket's path up again from the
grader's own root, where a symlink the learner's code put in the runtime folder could name any socket
of the machine (tests/test_sandbox.py tries it).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from traitlets import default

from . import sandbox
from .limits import kill_tree, limited_command
from .serialize import load_names


@dataclass
class KernelLimits:
    """The limits of one submission's kernel and runner (seconds per cell/test and in total, bytes).
    Course infrastructure."""
    cell_seconds: float = 30.0
    total_seconds: float = 300.0
    memory_bytes: int = 4 * 2**30
    max_output: int = 2**20          # bytes of output kept; 10x this kills the kernel
    file_bytes: int = 2**30
    always_execute: bool = True      # False: skip the kernel when the tests need no notebook values


@dataclass
class KernelReport:
    """What happened in the kernel: per-cell errors, why it stopped early, the dumped values. Course infrastructure."""
    cell_errors: list[str] = field(default_factory=list)
    stopped: str | None = None        # None when every cell ran
    stop_status: str = "error"        # "timeout" when stopped by a time limit
    values: dict[str, dict] = field(default_factory=dict)
    output_truncated: bool = False


CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


def _connect_once_context() -> zmq.asyncio.Context:
    """A ZMQ context whose sockets never reconnect (see :meth:`LimitedKernelManager._async_post_start_kernel`)."""
    context = zmq.asyncio.Context()
    context.setsockopt(zmq.RECONNECT_IVL, -1)
    return context


class SandboxKernelClient(AsyncKernelClient):
    """The client of a sandboxed kernel: its sockets connect once and never reconnect, and it has
    no heartbeat channel (whose thread opens a *new* socket, a new path lookup, after every missed
    beat; the manager that made the client answers ``is_alive`` from the kernel process instead).
    Course infrastructure."""

    @default("context")
    def _connect_once(self) -> zmq.asyncio.Context:
        self._created_context = True
        return _connect_once_context()

    def start_channels(self, shell=True, iopub=True, stdin=True, hb=True, control=True):
        super().start_channels(shell=shell, iopub=iopub, stdin=stdin, hb=False, control=control)


class LimitedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager (what nbclient expects) whose kernel starts under resource limits,
    in the submission's sandbox group when there is one (then over ``ipc`` sockets). Course infrastructure."""
    limits: KernelLimits = KernelLimits()
    group: sandbox.Group | None = None
    sandbox_root: str | None = None     # /proc/<init>/root: the sandbox's files as seen from here

    def format_kernel_cmd(self, extra_arguments=None):
        command = super().format_kernel_cmd(extra_arguments)
        if self.group is None:
            return limited_command(command, self.limits.memory_bytes, self.limits.file_bytes)
        inside = [sandbox.CONNECTION_FILE if part == self.connection_file else part for part in command]
        return self.group.launcher(sandbox.bwrap_command(inside, binds=[(self.connection_file, sandbox.CONNECTION_FILE)]))

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        await super()._async_launch_kernel(kernel_cmd, **kw)
        if self.group is not None:
            init = self.group.attach(self.provisioner.pid)
            self.sandbox_root = f"/proc/{init}/root"
            self.ip = self.sandbox_root + self.ip         # the kernel's sockets, reached from outside

    async def _async_post_start_kernel(self, **kw):
        if self.group is not None:
            # Connect once, when the kernel listens, and never again.  Each (re)connect looks the
            # socket's path up anew, in *our* file system: the learner's code may replace a socket of
            # its runtime folder by a symlink, and an absolute link met under /proc/<pid>/root is
            # resolved from our root, so a reconnect would reach any socket of this machine the link
            # names (tried: hundreds of connections a second to a socket outside the sandbox).
            await self._wait_until_listening(deadline=time.monotonic() + 60)
            self.context.setsockopt(zmq.RECONNECT_IVL, -1)      # the control socket, made next
            # (the client's sockets come from SandboxKernelClient's own context)
        await super()._async_post_start_kernel(**kw)

    async def _wait_until_listening(self, deadline: float) -> None:
        """Until every channel's path in the sandbox is a socket (not a link) that accepts a connection."""
        for channel in CHANNELS:
            path = f"{self.ip}-{getattr(self, f'{channel}_port')}"
            while not _listening_socket(path):
                if time.monotonic() > deadline or not await self._async_is_alive():
                    raise RuntimeError(f"the kernel did not open its {channel} socket")
                await asyncio.sleep(0.02)


def _listening_socket(path: str) -> bool:
    """``path`` is a Unix socket itself (``lstat``: not a symlink to one) and something accepts on it."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect(path)
        return True
    except OSError:
        return False


def _kernel_manager(limits: KernelLimits, workdir: Path) -> LimitedKernelManager:
    group = sandbox.current()
    if group is None:
        km = LimitedKernelManager(kernel_name="python3")
    else:
        km = LimitedKernelManager(kernel_name="python3", transport="ipc", ip=f"{sandbox.RUNTIME}/kernel",
                                  cache_ports=False, connection_file=str(workdir / "kernel.json"),
                                  client_class=f"{__name__}.{SandboxKernelClient.__qualname__}")
        km.group = group
    km.limits = limits
    return km


class CappedClient(NotebookClient):
    """A NotebookClient that keeps at most ``max_output`` bytes of output and kills a flooding kernel.
    Course infrastructure."""
    max_output: int = 2**20
    output_bytes: int = 0
    flooded: bool = False

    def output(self, outs, msg, display_id, cell_index):
        self.output_bytes += len(json.dumps(msg["content"]))
        if self.output_bytes > 10 * self.max_output and not self.flooded:
            self.flooded = True
            kill_tree(self.km.provisioner.pid)
        if self.output_bytes > self.max_output:
            return None
        return super().output(outs, msg, display_id, cell_index)


def _kernel_env() -> dict[str, str]:
    """Without a sandbox: the grader's environment plus a few settings (a sandbox rebuilds it)."""
    env = dict(os.environ)
    env.update({"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"})
    return env


def _error_of(cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {str(out.get('evalue', ''))[:300]}"
    return None


def _dump_cell(names: list[str], path: Path):
    source = ("from utils.grade.serialize import dump_names as _convcourse_dump\n"
              f"_convcourse_dump(globals(), {names!r}, {str(path)!r})")
    return nbformat.v4.new_code_cell(source)


def _run_cells(client: CappedClient, nb, cell_indices: list[int], limits: KernelLimits,
               report: KernelReport) -> None:
    deadline = time.monotonic() + limits.total_seconds
    for index in cell_indices:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            report.stopped, report.stop_status = f"the notebook ran longer than {limits.total_seconds:g} s in total", "timeout"
            return
        client.timeout = max(1, int(min(limits.cell_seconds, remaining)))
        cell = nb.cells[index]
        try:
            client.execute_cell(cell, index)
        except CellTimeoutError:
            report.stopped, report.stop_status = f"cell {index + 1} ran longer than {client.timeout} s", "timeout"
            return
        except DeadKernelError:
            report.stopped = (f"cell {index + 1} produced more than {10 * limits.max_output} bytes of output"
                              if client.flooded else
                              f"the kernel died in cell {index + 1} (os._exit, a crash, or out of memory)")
            return
        if client.flooded:
            report.stopped = f"cell {index + 1} produced more than {10 * limits.max_output} bytes of output"
            return
        error = _error_of(cell)
        if error:
            report.cell_errors.append(f"cell {index + 1}: {error}")


def run_notebook(nb, cell_indices: list[int], value_names: list[str], workdir: Path,
                 limits: KernelLimits) -> KernelReport:
    """Execute ``nb.cells[i]`` for i in ``cell_indices`` (in place) and dump ``value_names``.

    Args:
        nb: the student's notebook (nbformat v4 node); its cells get outputs.
        cell_indices: which cells to run, in order.
        value_names: names whose values are wanted after the run.
        workdir: the kernel's working directory (a scratch folder).
    Returns:
        a KernelReport; ``values`` is empty when the kernel stopped early.
    Course infrastructure.
    """
    report = KernelReport()
    km = _kernel_manager(limits, workdir)
    client = CappedClient(nb, km=km, timeout=int(limits.cell_seconds), allow_errors=True,
                          interrupt_on_timeout=False, startup_timeout=60,
                          resources={"metadata": {"path": str(workdir)}})
    client.max_output = limits.max_output
    try:
        with client.setup_kernel(env=_kernel_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            _run_cells(client, nb, cell_indices, limits, report)
            report.output_truncated = client.output_bytes > limits.max_output
            if report.stopped is None and value_names:
                inside = f"{sandbox.RUNTIME}/values.json" if km.group else str(workdir / "_grader_values.json")
                client.timeout = max(1, int(limits.cell_seconds))
                nb.cells.append(_dump_cell(value_names, inside))
                client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
                report.values = load_names((km.sandbox_root or "") + inside)   # read while the kernel lives
    except (CellTimeoutError, DeadKernelError, OSError, ValueError, TypeError) as exc:
        report.values = {}
        report.stopped = report.stopped or f"the values of your notebook could not be read back ({type(exc).__name__})"
    finally:
        # Only a kernel process not yet reaped: once nbclient's shutdown has waited for it, its pid
        # may be another process's (pid_max is 32768 on many machines), and kill_tree would end that.
        process = getattr(km.provisioner, "process", None) if km.provisioner else None
        if process is not None and process.poll() is None:
            kill_tree(process.pid)  # in a sandbox this includes its PID namespace's init: all of it
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)    # reap it (and count its CPU time in ours)
        if client.kc is not None:
            client.kc.stop_channels()
        run_sync(km._async_cleanup_resources)()
    return report
