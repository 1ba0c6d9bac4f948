"""The bubblewrap sandbox every process that runs learner code is started in (kernel and runner).

A sandbox is a ``bwrap`` command line (:func:`bwrap_command`): new user, PID, network, IPC and
UTS namespaces, the learner as uid/gid 65534 with every capability dropped, no new privileges,
no nested user namespaces, a new session, killed with its parent.  Its file system holds only
read-only binds of the system (``/usr``, ``/lib*``, a few files of ``/etc``), of the Python
installation and virtual environment, and of the course's ``utils`` package (bytecode caches
included), plus fresh size-limited tmpfs mounts for ``HOME`` (the working folder), ``/tmp``,
``/dev/shm`` and the Jupyter runtime folder.  ``solutions/``, ``--extra-tests``, ``--out``, the
submissions and every other folder of the repository are simply absent; the grader's processes
are in another PID namespace.  The environment is rebuilt from scratch (:func:`learner_env`).

All sandboxes of one submission share a :class:`Group`: a cgroup (v1 ``memory`` and ``pids``)
caps their memory and process count *together*, and one of the ``cpu`` controller (when there is
one) gives the submission one scheduling weight however many processes it runs, so that busy
processes of one submission cannot starve another graded at the same time into timeouts; where no cgroup can be made, a supervisor
thread sums the group's memory and processes with psutil and ends the group.  Ending the group
kills each sandbox's PID-namespace init, which takes every process of the namespace with it
(daemons included).  Every sandbox's PID namespace is recorded in the run's registry so that the
grader can check, before writing ``grades.csv``, that no learner process is left
(:func:`end_all`).

Used by :mod:`.kernel` (the notebook's Jupyter kernel, reached over ZMQ ``ipc`` sockets through
``/proc/<pid>/root``) and :mod:`.runner` (the learner's functions, reached over pipes).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

BWRAP = "bwrap"
UID = GID = 65534
HOME = "/home/learner"
RUNTIME = "/run/user/65534/jupyter"          # JUPYTER_RUNTIME_DIR inside; kernel sockets live here
CONNECTION_FILE = f"{RUNTIME}/kernel.json"    # the kernel's connection file inside
KERNEL_ARGV = ["-m", "ipykernel_launcher", "-f", CONNECTION_FILE]
SCRATCH_BYTES = 64 * 2**20                   # each writable tmpfs (HOME, /tmp, /dev/shm, runtime)
PIDS_MAX = 64                                # processes of one submission, all sandboxes together
NPROC = 64                                   # RLIMIT_NPROC of each learner process
CPU_SHARES = 1024                            # cgroup v1 cpu.shares of each submission (the default weight)
ETC_FILES = ("ld.so.cache", "ld.so.conf", "localtime", "nsswitch.conf", "mime.types")
UTILS = Path(__file__).resolve().parents[1]   # the course's utils package


class SandboxUnavailable(OSError):
    """bubblewrap is missing or does not work on this machine, or a sandbox did not start. Course infrastructure."""


# ---------------------------------------------------------------- what the sandbox sees

def _python_roots() -> list[str]:
    """Folders a learner's Python needs: the installation, the virtual environment, utils."""
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), sys.prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    if not any(os.path.realpath(sys.executable).startswith(r + os.sep) for r in roots):
        roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    kept = sorted(roots, key=len)
    # Drop folders inside another kept folder (bound with it); /usr is bound anyway.
    out = [r for i, r in enumerate(kept)
           if not any(r.startswith(k + os.sep) for k in kept[:i]) and not r.startswith("/usr" + os.sep)]
    return out + [str(UTILS)]


def _system_args() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


def learner_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a learner process: nothing of the grader's (no grading marker).
    Course infrastructure."""
    env = {"HOME": HOME, "USER": "learner", "LOGNAME": "learner", "LANG": "C.UTF-8",
           "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
           "JUPYTER_RUNTIME_DIR": RUNTIME, "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "TMPDIR": "/tmp"}
    env.update(extra or {})
    return env


def bwrap_command(argv: list[str], binds: list[tuple[str, str]] = (), env: dict[str, str] | None = None,
                  scratch_bytes: int = SCRATCH_BYTES) -> list[str]:
    """The ``bwrap`` command line that runs ``argv`` in a fresh sandbox.

    Args:
        argv: the command inside (paths as seen inside: the Python installation keeps its path).
        binds: extra ``(host file, path inside)`` read-only binds (e.g. a kernel connection file).
        env: the complete environment inside (default :func:`learner_env`).
        scratch_bytes: size of each writable tmpfs.
    Course infrastructure.
    """
    size = str(int(scratch_bytes))
    args = [BWRAP, "--unshare-user", "--uid", str(UID), "--gid", str(GID), "--disable-userns",
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", "jupyter", "--cap-drop", "ALL", "--new-session", "--die-with-parent"]
    args += _system_args()
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
             "--size", size, "--tmpfs", "/tmp",
             "--size", size, "--tmpfs", HOME,
             "--size", size, "--tmpfs", RUNTIME]
    # After the tmpfs mounts: a checkout or virtual environment under /tmp (CI clones there)
    # would otherwise be hidden by the fresh /tmp.
    for root in _python_roots():
        args += ["--ro-bind", root, root]
    for host, inside in binds:
        args += ["--ro-bind", host, inside]
    args += ["--remount-ro", "/", "--chdir", HOME, "--clearenv"]
    for key, value in (learner_env() if env is None else env).items():
        args += ["--setenv", key, value]
    return args + ["--", *argv]


def check_bwrap() -> str | None:
    """None when bubblewrap works here (a trivial Python command in a sandbox), else why not. Course infrastructure."""
    if shutil.which(BWRAP) is None:
        return "bubblewrap (bwrap) is not installed: install it (Debian/Ubuntu: apt-get install bubblewrap)"
    command = bwrap_command([sys.executable, "-I", "-S", "-c", "print('ok')"])
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap does not start ({exc})"
    if result.returncode != 0 or result.stdout.strip() != "ok":
        return f"bubblewrap does not work on this machine: {result.stderr.strip()[:300] or result.returncode}"
    return None


# ---------------------------------------------------------------- a seccomp filter

# System calls a learner never needs, refused with EPERM: mounting and namespaces (closed already
# by the dropped capabilities and --disable-userns; this is a second lock), ptrace and reading
# other processes' memory, keyrings, BPF, perf, modules, reboot, swap, hostname.
_DENIED = {
    "x86_64": (0xC000003E, [101, 165, 166, 155, 161, 272, 308, 250, 248, 249, 321, 298, 246, 320, 175, 313, 176,
                            310, 311, 323, 163, 167, 168, 169, 170, 171, 172, 173, 428, 429, 430, 431, 432, 433, 442]),
    "aarch64": (0xC00000B7, [117, 40, 39, 41, 51, 97, 268, 219, 217, 218, 280, 241, 104, 294, 105, 273, 106,
                             270, 271, 282, 89, 224, 225, 142, 161, 162, 428, 429, 430, 431, 432, 433, 442]),
}
SECCOMP_FD = 10


def seccomp_program() -> bytes | None:
    """A classic-BPF seccomp filter (what ``bwrap --seccomp`` reads) refusing _DENIED on this
    machine's architecture, and every system call made through another ABI (x32, i386); None
    on an architecture not listed. Course infrastructure."""
    import platform
    import struct
    arch = _DENIED.get(platform.machine())
    if arch is None:
        return None
    audit_arch, numbers = arch
    deny, allow = 0x00050000 | 1, 0x7FFF0000          # SECCOMP_RET_ERRNO | EPERM, SECCOMP_RET_ALLOW
    n = len(numbers)
    ins = [(0x20, 0, 0, 4),                           # A = arch
           (0x15, 1, 0, audit_arch),                  # arch ok: skip the deny below
           (0x06, 0, 0, deny),
           (0x20, 0, 0, 0),                           # A = syscall number
           (0x35, n + 1, 0, 0x40000000)]              # x32 ABI: to the deny at the end
    ins += [(0x15, n - i, 0, nr) for i, nr in enumerate(numbers)]   # match: jump to deny
    ins += [(0x06, 0, 0, allow), (0x06, 0, 0, deny)]
    return b"".join(struct.pack("<HBBI", *i) for i in ins)


# ---------------------------------------------------------------- limits for a whole submission

# Runs on the grader's side just before bwrap: joins the group's cgroups, sets the rlimits that
# every learner process inherits, puts the seccomp program on descriptor SECCOMP_FD, then exec's
# the command.  argv: memory file-size nproc n-cgroups cgroup.procs... seccomp-hex command...
_LAUNCHER = ("import os, resource as r, sys; a = sys.argv; m, f, p, n = map(int, a[1:5])\n"
             "for procs in a[5:5 + n]:\n    open(procs, 'w').write(str(os.getpid()))\n"
             "if a[5 + n]:\n    rd, wr = os.pipe(); os.write(wr, bytes.fromhex(a[5 + n])); os.close(wr)\n"
             f"    os.dup2(rd, {SECCOMP_FD}); os.close(rd)\n"
             "del a[5 + n]\n"
             "r.setrlimit(r.RLIMIT_AS, (m, m)); r.setrlimit(r.RLIMIT_FSIZE, (f, f)); r.setrlimit(r.RLIMIT_CORE, (0, 0))\n"
             "r.setrlimit(r.RLIMIT_NPROC, (p, p)) if p else None\n"
             "os.execvp(a[5 + n], a[5 + n:])")


def _own_cgroup(controller: str) -> Path | None:
    """This process's cgroup folder of a v1 ``controller`` when it is mounted and writable."""
    base = Path("/sys/fs/cgroup") / controller
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(","):
                folder = base / path.lstrip("/")
                return folder if os.access(folder, os.W_OK) else None
    except OSError:
        pass
    return None


def remove_cgroup(folder: Path, attempts: int = 100, kill: bool = False) -> bool:
    """Remove the cgroup ``folder``, retrying every 20 ms: the kernel refuses (EBUSY) while a process
    is still in it, and a killed process leaves only once it has been reaped.  With ``kill``, every
    process still listed in it is sent SIGKILL before each try.  True once it is gone (or was already).
    Course infrastructure."""
    for _ in range(attempts):
        if kill:
            with contextlib.suppress(OSError, ValueError):
                for pid in (folder / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
        try:
            folder.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.02)
    return False


class Group:
    """The sandboxes of one submission: a shared memory and process cap, and one way to end them.

    Args:
        memory_bytes: memory of all the group's processes together (RSS + tmpfs) and each
            process's address space (RLIMIT_AS, so that a large allocation raises MemoryError).
        file_bytes: largest file a learner process may write (RLIMIT_FSIZE).
        registry: folder where each sandbox's PID namespace is recorded (see :func:`end_all`).
        pids_max: processes of the group together.
    Course infrastructure.
    """

    def __init__(self, memory_bytes: int, file_bytes: int, registry: str | None, pids_max: int = PIDS_MAX,
                 nproc: int = NPROC):
        self.memory_bytes, self.file_bytes, self.registry = memory_bytes, file_bytes, registry
        self.pids_max, self.nproc = pids_max, nproc
        # Kept as psutil.Process objects (pid and start time), never as bare pids: a dead sandbox's
        # pid is soon another process's (pid_max is 32768 on many machines), and signalling a
        # stale pid would kill it.  psutil refuses to signal a process whose start time differs.
        self.inits: list[psutil.Process] = []     # PID-namespace init (bwrap's child) of each sandbox
        self.bwraps: list[psutil.Process] = []
        self.cgroups: list[Path] = []
        self.ended_for: str | None = None   # set by the supervisor
        self._stop = threading.Event()
        name = f"convcourse-grade-{os.getpid()}-{time.monotonic_ns()}"
        for controller, settings in (("memory", {"memory.limit_in_bytes": memory_bytes,
                                                 "memory.memsw.limit_in_bytes": memory_bytes}),
                                     ("pids", {"pids.max": pids_max}),
                                     # one default weight per submission: the CPU is shared between the
                                     # submissions graded at once, not between their (up to 64) processes
                                     ("cpu", {"cpu.shares": CPU_SHARES})):
            parent = _own_cgroup(controller)
            if parent is None:
                continue
            folder = parent / name
            try:
                folder.mkdir()
                for key, value in settings.items():
                    with contextlib.suppress(OSError):
                        (folder / key).write_text(str(value))
                self.cgroups.append(folder)
            except OSError:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        self._controllers = {self._controller_of(f) for f in self.cgroups}
        if not {"memory", "pids"} <= self._controllers:
            threading.Thread(target=self._supervise, daemon=True).start()

    @staticmethod
    def _controller_of(folder: Path) -> str:
        parts = folder.parts
        return parts[parts.index("cgroup") + 1] if "cgroup" in parts else ""

    def launcher(self, command: list[str]) -> list[str]:
        """``command`` (a :func:`bwrap_command`) started inside this group's cgroups, rlimits and
        seccomp filter."""
        procs = [str(f / "cgroup.procs") for f in self.cgroups]
        program = seccomp_program()
        if program is not None:
            command = [command[0], "--seccomp", str(SECCOMP_FD), *command[1:]]
        return [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(self.memory_bytes), str(self.file_bytes),
                str(self.nproc), str(len(procs)), *procs, program.hex() if program else "", *command]

    def attach(self, bwrap_pid: int, seconds: float = 30.0) -> int:
        """Record the sandbox started as ``bwrap_pid``; returns its PID-namespace init (as seen here)."""
        deadline = time.monotonic() + seconds
        try:
            bwrap = psutil.Process(bwrap_pid)       # our child, not yet reaped: the pid is still its own
        except psutil.NoSuchProcess:
            raise SandboxUnavailable("the sandbox did not start") from None
        self.bwraps.append(bwrap)
        while time.monotonic() < deadline:
            try:
                children = bwrap.children()
            except psutil.NoSuchProcess:
                break
            if children:
                init = children[0]
                self.inits.append(init)
                self._register(init)
                return init.pid
            time.sleep(0.005)
        raise SandboxUnavailable("the sandbox did not start")

    def _register(self, init: psutil.Process) -> None:
        if not self.registry:
            return
        with contextlib.suppress(OSError, psutil.Error):
            record = namespace_record(init)
            Path(self.registry, record).touch()

    def processes(self) -> list[psutil.Process]:
        """Every process of the group that is still there."""
        found: dict[int, psutil.Process] = {}
        for root in self.bwraps:
            with contextlib.suppress(psutil.Error):
                if not root.is_running():       # gone, and its pid perhaps another process's now
                    continue
                for p in [root] + root.children(recursive=True):
                    found[p.pid] = p
        for folder in self.cgroups:
            with contextlib.suppress(OSError, ValueError):
                for pid in (folder / "cgroup.procs").read_text().split():
                    with contextlib.suppress(psutil.Error):
                        found[int(pid)] = psutil.Process(int(pid))
        return list(found.values())

    def end(self, seconds: float = 10.0) -> None:
        """Kill every process of the group (each PID namespace's init first) and wait until none is left."""
        deadline = time.monotonic() + seconds
        while True:
            for process in self.inits + self.processes():
                with contextlib.suppress(psutil.Error):
                    process.kill()       # psutil compares the start time first: never a reused pid
            left = self.processes()
            alive = [p for p in left if _alive(p)]
            if not alive or time.monotonic() > deadline:
                return
            time.sleep(0.02)

    def limit_notes(self) -> list[str]:
        """Sentences for the feedback when the group hit a limit."""
        notes = []
        gb = f"{self.memory_bytes / 2**30:g} GB"
        for folder in self.cgroups:
            kind = self._controller_of(folder)
            with contextlib.suppress(OSError, ValueError):
                oom = dict(line.split() for line in (folder / "memory.oom_control").read_text().splitlines()
                           if len(line.split()) == 2) if kind == "memory" else {}
                if kind == "memory" and (int(oom.get("oom_kill", 0)) > 0
                                         or int((folder / "memory.failcnt").read_text() or 0) > 0):
                    notes.append(f"LIMIT: your processes together reached the memory limit ({gb}); "
                                 "the process that used most was ended")
                if kind == "pids":
                    events = dict(line.split() for line in (folder / "pids.events").read_text().splitlines())
                    if int(events.get("max", 0)) > 0:
                        notes.append(f"LIMIT: your code tried to run more than {self.pids_max} processes at once")
        if self.ended_for:
            notes.append(f"LIMIT: {self.ended_for}; all your processes were ended")
        return notes

    def close(self) -> None:
        """End the group and remove its cgroups."""
        self._stop.set()
        self.end()
        for folder in self.cgroups:
            remove_cgroup(folder, attempts=100)
        self.cgroups = []

    def _supervise(self) -> None:
        """Without cgroups: sum the group's memory and processes; over a cap, end the whole group."""
        while not self._stop.wait(0.2):
            bwraps = {p.pid for p in self.bwraps}
            processes = [p for p in self.processes() if p.pid not in bwraps]
            rss = 0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    rss += process.memory_info().rss
            if "memory" not in self._controllers and rss > self.memory_bytes:
                self.ended_for = f"your processes together used more than {self.memory_bytes / 2**30:g} GB"
            elif "pids" not in self._controllers and len(processes) > self.pids_max:
                self.ended_for = f"your code ran more than {self.pids_max} processes at once"
            else:
                continue
            self.end()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# ---------------------------------------------------------------- the current submission's group

_current: Group | None = None
enabled = False          # set by the grader: True unless --unsafe-no-sandbox
registry: str | None = None


def current() -> Group | None:
    """The group of the submission this process grades (None without a sandbox). Course infrastructure."""
    return _current


def begin_submission(memory_bytes: int, file_bytes: int) -> Group | None:
    """Start this worker's :class:`Group` (None when sandboxing is off).  Course infrastructure."""
    global _current
    _current = Group(memory_bytes, file_bytes, registry) if enabled else None
    return _current


def end_submission() -> list[str]:
    """End the current group; returns its limit notes. Course infrastructure."""
    global _current
    if _current is None:
        return []
    group, _current = _current, None
    group.end()
    notes = group.limit_notes()       # read before the cgroups go
    group.close()
    return notes


def namespace_record(init: psutil.Process) -> str:
    """The registry's name for the PID namespace whose init is ``init``: ``<inode>-<pid>-<start time>``.

    The inode alone would not do: the kernel gives a new namespace the lowest free number, so the
    next sandbox made anywhere on the machine (another grading run's) gets a dead one's inode at
    once.  The init tells them apart, because a PID namespace lives exactly as long as its init
    (the kernel ends every other process of it before the init's own exit completes).
    Course infrastructure."""
    return f"{os.stat(f'/proc/{init.pid}/ns/pid').st_ino}-{init.pid}-{init.create_time()!r}"


def _recorded(registry_dir: str) -> dict[int, list[tuple[int, float]]]:
    """inode -> [(init pid, init start time)] of every sandbox recorded in ``registry_dir``."""
    records: dict[int, list[tuple[int, float]]] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir(registry_dir):
            with contextlib.suppress(ValueError):
                inode, pid, started = name.split("-", 2)
                records.setdefault(int(inode), []).append((int(pid), float(started)))
    return records


def _still_ours(inode: int, pid: int, started: float) -> bool:
    """Is the recorded init still alive, the same process (start time) in the same namespace?"""
    try:
        init = psutil.Process(pid)
        return (abs(init.create_time() - started) < 1e-3 and _alive(init)
                and os.stat(f"/proc/{pid}/ns/pid").st_ino == inode)
    except (OSError, psutil.Error):
        return False


def namespace_processes(registry_dir: str) -> list[psutil.Process]:
    """Processes (anywhere on this machine) in one of the PID namespaces recorded in ``registry_dir``
    that still exist (see :func:`namespace_record`). Course infrastructure."""
    records = _recorded(registry_dir)
    if not records:
        return []
    found: dict[int, list[psutil.Process]] = {}
    for process in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            inode = os.stat(f"/proc/{process.pid}/ns/pid").st_ino
            if inode in records and _alive(process):
                found.setdefault(inode, []).append(process)
    # Checked after the scan: a namespace whose init is alive now was the same namespace during it.
    return [process for inode, processes in found.items()
            if any(_still_ours(inode, pid, started) for pid, started in records[inode])
            for process in processes]


def end_all(registry_dir: str, seconds: float = 10.0) -> int:
    """Kill every learner process of the run that is left; returns how many had to be killed.
    Raises RuntimeError when some cannot be ended (grades must then not be written). Course infrastructure."""
    killed, deadline = 0, time.monotonic() + seconds
    while True:
        left = namespace_processes(registry_dir)
        if not left:
            return killed
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(left)} learner process(es) could not be ended: {[p.pid for p in left]}")
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()
                killed += 1
        time.sleep(0.05)


def remove_groups_of(worker_pid: int) -> None:
    """End and remove the cgroups a (killed) worker ``worker_pid`` left behind. Course infrastructure."""
    for controller in ("memory", "pids", "cpu"):
        parent = _own_cgroup(controller)
        if parent is None:
            continue
        for folder in parent.glob(f"convcourse-grade-{worker_pid}-*"):
            remove_cgroup(folder, attempts=200, kill=True)
