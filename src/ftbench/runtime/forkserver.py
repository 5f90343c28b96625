"""Fork server ("zygote") for local workflow runs.

It imports torch, mace and ase once, then forks one child per `python -m ftbench ...` job, so a
job skips the ~5 s import start-up.

Protocol (one Unix stream connection per job, see ftbench.runtime.forkclient):
  client -> server: 4-byte length + JSON request {argv, cwd, env, ...}, with the client's
                    open stdin/stdout/stderr passed along (SCM_RIGHTS);
  server -> client: JSON lines: {"pid": N} once the child runs, then {"status": waitstatus};
                    or {"refused": reason}, and the client runs the job itself;
                    or {"interrupted": reason} (the run is being stopped), and the client dies of SIGINT;
  client -> server: JSON lines {"signal": N}: a signal the client got, for the job's process group.
Each job is a fresh fork of the pristine server, which never runs a job or any torch
computation (no OpenMP/MKL thread pool exists at fork time; checked at start-up), so nothing a
job changes reaches the next. The server kills a job's process group when its client hangs up
(Snakemake cancelled it, even with SIGKILL), and exits when the Snakemake process that started
it is gone.

Ctrl-C: the jobs are not in Snakemake's process group, so the terminal's SIGINT reaches them only
through their clients, and a SIGINT to Snakemake alone not at all. start() therefore installs a
SIGINT handler in Snakemake: the first SIGINT sends the server SIGUSR1 (SIGINT to every job's group,
once: a client forwarding the same Ctrl-C is not repeated; later requests are answered
"interrupted") and then raises KeyboardInterrupt as Python's default handler does; every further
SIGINT sends SIGUSR2 (SIGKILL to every job) and raises nothing, so Snakemake is not torn down while
it waits for its job threads.

Workflow side: start() in `onstart:` (local executions only), stop() in `onsuccess:`/`onerror:`.
Off with `--config fork_server=False` or FTBENCH_FORKSERVER=0. This module imports only the
standard library at import time; the heavy imports happen in serve().
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

SOCKET_ENV = "FTBENCH_FORKSERVER_SOCKET"  # set for jobs by start(): where the server listens
SWITCH_ENV = "FTBENCH_FORKSERVER"  # user switch: 0/off/false/no disables the server
PROTOCOL = 2
# A client's forwarded SIGINT and the workflow's SIGUSR1 within this many seconds are one Ctrl-C
# (a terminal signals Snakemake and the clients at once): the job gets one SIGINT, not two.
SAME_CTRL_C_S = 2.0
INTERRUPT_SIGNAL = signal.SIGUSR1  # workflow -> server: the run is interrupted (SIGINT to the jobs)
KILL_SIGNAL = signal.SIGUSR2  # workflow -> server: a further Ctrl-C (SIGKILL to the jobs)
# Blocked across fork: a job must not lose a signal sent before it restored Python's handlers.
_JOB_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
# What the jobs import lazily (training, evaluation, E0s, robustness, tables). Missing
# optional ones are skipped.
PRELOAD = (
    "numpy",
    "scipy.spatial",
    "scipy.optimize",
    "ase",
    "ase.io",
    "ase.io.extxyz",
    "ase.md",
    "ase.optimize",
    "torch",
    "e3nn",
    "mace",
    "mace.tools",
    "mace.data",
    "mace.modules",
    "mace.cli.run_train",
    "mace.calculators",
    "pandas",
)
# Variables read at interpreter start-up: a job whose value differs from the server's runs on
# its own (PYTHONUNBUFFERED is applied per job).
_STARTUP_PREFIX = "PYTHON"
_PER_JOB = {"PYTHONUNBUFFERED"}
# Thread-count variables are read when OpenMP/MKL load: the server loads them without these,
# and each job sets its own count from its environment (set_num_threads).
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_OFF = {"0", "off", "false", "no"}


def startup_env(env: dict) -> dict:
    """Return the variables read at interpreter start-up (PYTHON*), less those applied per job."""
    return {k: v for k, v in env.items() if k.startswith(_STARTUP_PREFIX) and k not in _PER_JOB}


def compat_key(env: dict) -> dict:
    """Return what must match between a client and the server for a fork to equal a fresh start."""
    return {
        "protocol": PROTOCOL,
        "prefix": sys.prefix,
        "executable": os.path.realpath(sys.executable),
        "version": sys.version,
        "flags": list(sys.flags),
        "warnoptions": list(sys.warnoptions),
        "xoptions": {k: str(v) for k, v in sys._xoptions.items()},
        "startup_env": startup_env(env),
    }


# ---- workflow side (Snakefile onstart/onsuccess/onerror) ---------------------------------------

_server: dict = {}
_interrupts = [0]  # Ctrl-Cs this Snakemake process got since start() installed the handler


def off_reason(workflow, config: dict) -> str | None:
    """Why the fork server stays off for this run, or None."""
    from snakemake.settings.types import DeploymentMethod

    if not config.get("fork_server", True):
        return "config fork_server is false"
    if os.environ.get(SWITCH_ENV, "").strip().lower() in _OFF:
        return f"{SWITCH_ENV}={os.environ[SWITCH_ENV]}"
    if not workflow.local_exec:
        return "cluster executor (jobs run elsewhere)"
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "conda deployment (jobs run another interpreter)"
    if not sys.platform.startswith("linux"):
        return "not Linux"
    return None


def _remove_stale(prefix: str) -> None:
    """Folders of servers from killed runs (their process is gone)."""
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if not name.startswith(prefix) or not os.path.isdir(path) or os.stat(path).st_uid != os.getuid():
            continue
        try:
            with open(os.path.join(path, "pid")) as f:
                os.kill(int(f.read()), 0)
        except (OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)


def start(workflow, config: dict, log_path: str = "logs/forkserver.log") -> str | None:
    """Start the server for this run and point the jobs at it; returns the socket path."""
    reason = off_reason(workflow, config)
    if reason:
        os.environ.pop(SOCKET_ENV, None)
        print(f"ftbench: fork server off ({reason})", file=sys.stderr)
        return None
    prefix = "ftbench-fs-"
    _remove_stale(prefix)
    folder = tempfile.mkdtemp(prefix=prefix)  # mode 0700: only this user can connect
    path = os.path.join(folder, "sock")
    if len(path.encode()) > 100:  # sun_path holds 108 bytes
        print(f"ftbench: fork server off (socket path {path} too long; set TMPDIR shorter)", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_VARS and k != SOCKET_ENV}
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ftbench.runtime.forkserver", "--socket", path, "--parent", str(os.getpid())],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    with open(os.path.join(folder, "pid"), "w") as f:
        f.write(str(proc.pid))
    _server.update(proc=proc, folder=folder)
    os.environ[SOCKET_ENV] = path
    _interrupts[0] = 0  # a new run (several can run in one process through Snakemake's API)
    _handle_ctrl_c()
    print(
        f"ftbench: fork server starting (jobs share one torch/mace import; log {log_path}; "
        f"off with --config fork_server=False or {SWITCH_ENV}=0)",
        file=sys.stderr,
    )
    return path


def _handle_ctrl_c() -> None:
    """Install the SIGINT handler described in the module docstring (not where SIGINT is ignored)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return  # ours already, ignored (a script's background job) or someone else's: leave it
    try:
        signal.signal(signal.SIGINT, _on_ctrl_c)
    except ValueError:  # not the main thread: Snakemake's default handling stays
        pass


def _on_ctrl_c(signum, frame) -> None:
    _interrupts[0] += 1
    first = _interrupts[0] == 1
    proc = _server.get("proc")
    signalled = False
    if proc is not None and proc.returncode is None:
        try:
            os.kill(proc.pid, INTERRUPT_SIGNAL if first else KILL_SIGNAL)
            signalled = True
        except OSError:
            pass
    if first:
        # Snakemake's own handling: stop scheduling, wait for the job threads, onerror.
        raise KeyboardInterrupt
    # os.write: print() here could re-enter a stderr write the main thread is in the middle of
    os.write(2, b"ftbench: already stopping" + (b"; killing the running jobs\n" if signalled else b"\n"))


def stop() -> None:
    """Stop the server start() launched and remove its socket folder (the workflow's onsuccess/onerror)."""
    proc, folder = _server.pop("proc", None), _server.pop("folder", None)
    os.environ.pop(SOCKET_ENV, None)
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


# ---- server ------------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} [{os.getpid()}] {msg}", file=sys.stderr, flush=True)


def _thread_count() -> int | None:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def _prctl_pdeathsig(sig: int) -> None:
    """Linux: deliver `sig` to this process when its parent exits."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    """Length-prefixed JSON request; the fds arrive with its first bytes."""
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 8)
    while len(data) < 4 or len(data) < 4 + struct.unpack("!I", data[:4])[0]:
        more = conn.recv(65536)
        if not more:
            raise ConnectionError("request cut short")
        data += more
    size = struct.unpack("!I", data[:4])[0]
    return json.loads(data[4 : 4 + size]), fds


class _Refused(Exception):
    pass


class _Interrupted(Exception):
    pass


def _send(conn: socket.socket, obj: dict) -> None:
    try:
        conn.sendall(json.dumps(obj).encode() + b"\n")
    except OSError:
        pass  # the client is gone; its job is killed when its hang-up is seen


class Server:
    """The server process: preload the imports, then fork one child per client job."""

    def __init__(self, path: str, parent: int | None):
        self.path, self.parent = path, parent
        self.jobs: dict[int, socket.socket] = {}  # child pid -> its client's connection
        self.started: dict[int, float] = {}
        self.stopping = False
        self.interrupted = False  # the workflow was interrupted: no new jobs
        self.pending: list[int] = []  # INTERRUPT_SIGNAL/KILL_SIGNAL received, acted on in the loop
        self.sigint_at: dict[int, float] = {}  # job pid -> when it was last sent SIGINT
        self.buffers: dict[int, bytes] = {}  # job pid -> partial message from its client
        self.startup = startup_env(os.environ)  # before the imports change anything
        # From the start: the default action of SIGUSR1/2 would end the server while it imports,
        # and the waiting clients would then run their jobs themselves.
        for sig in (INTERRUPT_SIGNAL, KILL_SIGNAL):
            signal.signal(sig, self._on_control)

    def _on_control(self, signum, _frame) -> None:
        self.interrupted = True  # at once: a request accepted before the loop acts is answered so
        self.pending.append(signum)

    def preload(self) -> None:
        """Import everything the jobs use, refusing to serve if that started a thread pool or CUDA."""
        # A CUDA probe during the imports must not initialise the driver (not fork-safe), and
        # OpenBLAS (numpy, scipy) must not start its thread pool as it loads; each job sets
        # the BLAS thread count its own environment asks for (_blas_threads).
        os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        before = dict(os.environ)
        t0, c0 = time.perf_counter(), time.process_time()
        from ftbench import cli

        names = list(PRELOAD) + [f"ftbench.{mod}" for mod, _ in cli.SUBCOMMANDS.values()]
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as err:  # an optional dependency: the job imports it itself
                _log(f"preload {name}: {type(err).__name__}: {err}")
        # Imports that set variables (mace sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD) set them in
        # every job, as a fresh import would.
        self.env_set = {k: v for k, v in os.environ.items() if before.get(k) != v}
        self.env_unset = [k for k in before if k not in os.environ]
        threads = _thread_count()
        if threads not in (None, 1):
            raise RuntimeError(
                f"{threads} threads after the imports; forking would copy a broken thread pool (an import started one)"
            )
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            raise RuntimeError("CUDA initialised during the imports; forked jobs could not use it")
        import gc

        gc.collect()
        gc.freeze()  # keep the imported objects out of the jobs' collections (fewer copied pages)
        _log(
            f"preloaded {len(sys.modules)} modules in {time.perf_counter() - t0:.1f} s "
            f"({time.process_time() - c0:.1f} s CPU)"
        )

    def serve(self) -> None:
        """Accept jobs until stopped, or until the workflow that started the server is gone."""
        import selectors

        self.signals = {s: signal.getsignal(s) for s in (*_JOB_SIGNALS, signal.SIGCHLD, signal.SIGPIPE)}
        for sig in (INTERRUPT_SIGNAL, KILL_SIGNAL):  # a job gets the default action, as a fresh process
            self.signals[sig] = signal.SIG_DFL
        self.wake_r, self.wake_w = socket.socketpair()
        for s in (self.wake_r, self.wake_w):
            s.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through wake_r
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_stop)

        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tmp = self.path + ".tmp"
        self.listener.bind(tmp)
        self.listener.listen(128)
        os.rename(tmp, self.path)  # the socket appears only once the server accepts
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        _log(f"listening on {self.path}")
        try:
            while not self.stopping:
                for key, _ in self.sel.select(timeout=1.0):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        try:
                            self.wake_r.recv(4096)
                        except BlockingIOError:
                            pass
                    else:
                        self._client_event(key.data, key.fileobj)
                self._control()
                self._reap()
                if self.parent is not None and os.getppid() != self.parent:
                    _log("the workflow that started the server is gone")
                    break
        finally:
            self._shutdown()

    def _on_stop(self, *_):
        self.stopping = True

    def _control(self) -> None:
        """Act on the workflow's INTERRUPT_SIGNAL / KILL_SIGNAL."""
        while self.pending:
            sig = self.pending.pop(0)
            self.interrupted = True
            if sig == KILL_SIGNAL:
                _log(f"killing {len(self.jobs)} jobs (Ctrl-C again)")
                for pid in self.jobs:
                    _signal_group(pid, signal.SIGKILL)
                continue
            todo = [pid for pid in self.jobs if pid not in self.sigint_at]  # not those their client interrupted
            _log(f"interrupted: SIGINT to {len(todo)} of {len(self.jobs)} jobs")
            for pid in todo:
                self._signal_job(pid, signal.SIGINT)

    def _signal_job(self, pid: int, sig: int) -> None:
        """Send `sig` to the job's process group; a SIGINT it got just now is not repeated."""
        if sig == signal.SIGINT:
            now = time.monotonic()
            if now - self.sigint_at.get(pid, -SAME_CTRL_C_S) < SAME_CTRL_C_S:
                return
            self.sigint_at[pid] = now
        _signal_group(pid, sig)

    def _shutdown(self) -> None:
        for pid in list(self.jobs):
            _kill_group(pid)
        try:
            os.unlink(self.path)
        except OSError:
            pass
        _log(f"stopped ({len(self.jobs)} jobs killed)")

    def _accept(self) -> None:
        import selectors

        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(10)
            if hasattr(socket, "SO_PEERCRED"):
                _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
                if uid != os.getuid():
                    raise PermissionError(f"client uid {uid}")
            request, fds = _recv_request(conn)
            if len(fds) != len(request["fds"]):
                raise ValueError("file descriptors missing")
            if self.interrupted:
                raise _Interrupted("the run is being interrupted")
            mine = compat_key(os.environ)
            mine["startup_env"] = self.startup
            theirs = request.get("compat")
            if theirs != mine:
                diff = sorted(k for k in mine if (theirs or {}).get(k) != mine[k])
                raise _Refused(f"interpreter differs ({', '.join(diff)})")
        except (_Refused, _Interrupted, OSError, ValueError, KeyError, TypeError) as err:
            if isinstance(err, _Interrupted):  # the client dies of SIGINT, as if it had got the Ctrl-C
                _send(conn, {"interrupted": str(err)})
            elif isinstance(err, _Refused):  # the client runs the job itself
                _send(conn, {"refused": str(err)})
            else:
                _log(f"bad request: {type(err).__name__}: {err}")
            for fd in fds:  # the job's stdout/stderr must not stay open here
                os.close(fd)
            conn.close()
            return
        server_pid = os.getpid()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _JOB_SIGNALS)
        try:
            pid = os.fork()
        except OSError as err:  # out of memory or processes: the client runs the job itself
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            _send(conn, {"refused": f"fork failed: {err}"})
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        if pid == 0:
            try:
                self._child(conn, request, fds, server_pid, mask)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(70)  # only reached if the child set-up itself failed
        try:
            os.setpgid(pid, pid)  # as the child does: a signal for its group must not miss it
        except OSError:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for fd in fds:
            os.close(fd)
        self.jobs[pid] = conn
        self.started[pid] = time.perf_counter()
        conn.settimeout(None)
        _send(conn, {"pid": pid})
        self.sel.register(conn, selectors.EVENT_READ, pid)
        _log(f"job {pid} started: {' '.join(request['argv'][:1])}")

    def _client_event(self, pid: int, conn: socket.socket) -> None:
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        if not data:
            if pid in self.jobs:  # the client hung up (cancelled): its job goes too
                _log(f"job {pid}: client gone, killing it")
                _kill_group(pid)
            self.sel.unregister(conn)
            return
        lines = (self.buffers.pop(pid, b"") + data).split(b"\n")
        if lines[-1]:
            self.buffers[pid] = lines[-1]
        for line in lines[:-1]:
            try:
                sig = int(json.loads(line)["signal"])
            except (ValueError, KeyError, TypeError):
                _log(f"job {pid}: bad message from its client: {line[:100]!r}")
                continue
            if pid in self.jobs:
                self._signal_job(pid, sig)

    def _reap(self) -> None:
        while self.jobs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.jobs.pop(pid, None)
            self.sigint_at.pop(pid, None)
            self.buffers.pop(pid, None)
            if conn is None:
                continue
            _send(conn, {"status": status})
            try:
                self.sel.unregister(conn)
            except (KeyError, ValueError):
                pass
            conn.close()
            _log(f"job {pid}: status {status} after {time.perf_counter() - self.started.pop(pid):.1f} s")

    # ---- in the forked child ----

    def _child(self, conn: socket.socket, request: dict, fds: list[int], server_pid: int, mask) -> None:
        os.setpgid(0, 0)  # its own group: a cancelled job is killed with whatever it started
        _prctl_pdeathsig(signal.SIGKILL)
        signal.set_wakeup_fd(-1)
        for sig, handler in self.signals.items():
            signal.signal(sig, handler)
        # Only the job's own descriptors stay open (other clients must see the server hang up).
        self.sel.close()
        for s in (self.listener, self.wake_r, self.wake_w, conn, *self.jobs.values()):
            s.close()
        if os.getppid() != server_pid:  # the server died before PDEATHSIG was armed
            os._exit(70)
        for target in (0, 1, 2):
            if target in request["fds"]:
                os.dup2(fds[request["fds"].index(target)], target)
            else:
                try:
                    os.close(target)
                except OSError:
                    pass
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        if request.get("affinity") and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, request["affinity"])
        os.environ.clear()
        os.environ.update(request["env"])
        for k in self.env_unset:
            os.environ.pop(k, None)
        os.environ.update(self.env_set)
        _fresh_stdio(bool(os.environ.get("PYTHONUNBUFFERED")))
        sys.path[0] = request["cwd"]
        sys.argv = [request["main"], *request["argv"]]
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed()  # a fresh process seeds its global RNG from the OS
        torch = sys.modules.get("torch")
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if torch is not None and threads.isdigit() and int(threads) > 0:
            torch.set_num_threads(int(threads))
        _blas_threads()
        os._exit(_run_job(request["argv"], mask))


def _blas_threads() -> None:
    """Set OpenBLAS threads as a fresh process would start them.

    OpenBLAS reads these variables as it loads, else uses every CPU; the server loaded it single-threaded.
    """
    want = None
    for var in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            want = int(value)
            break
    if want is None:
        want = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if want == 1:
        return
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if line.split()[-1].startswith("/")}
        libs = {p for p in libs if "openblas" in os.path.basename(p).lower()}
    except OSError:
        return
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in (
            "openblas_set_num_threads",
            "openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads",
            "scipy_openblas_set_num_threads64_",
        ):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(ctypes.c_int(want))
                break


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except OSError:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _kill_group(pid: int) -> None:
    _signal_group(pid, signal.SIGKILL)


_KEEP: list = []


def _fresh_stdio(unbuffered: bool) -> None:
    """sys.stdin/stdout/stderr as a fresh interpreter would open them on the job's fds."""
    import io

    def stream(fd: int, mode: str, **kw):
        try:
            os.fstat(fd)
        except OSError:
            return None
        raw_buffering = 0 if (unbuffered and mode == "wb") else -1
        binary = open(fd, mode, buffering=raw_buffering, closefd=False)
        return io.TextIOWrapper(binary, encoding=kw.pop("encoding"), **kw)

    enc = sys.stdout.encoding if sys.stdout else "utf-8"
    # The server's own stream objects own (and would close) fds 0-2 when freed: keep them.
    _KEEP.extend((sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__))
    sys.stdin = sys.__stdin__ = stream(0, "rb", encoding=enc, errors="strict")
    sys.stdout = sys.__stdout__ = stream(
        1,
        "wb",
        encoding=enc,
        errors="strict",
        line_buffering=os.isatty(1) if _isfd(1) else False,
        write_through=unbuffered,
    )
    sys.stderr = sys.__stderr__ = stream(
        2, "wb", encoding=enc, errors="backslashreplace", line_buffering=True, write_through=unbuffered
    )


def _isfd(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _run_job(argv: list[str], mask=None) -> int:
    """`python -m ftbench argv`'s exit status, with the interpreter's exit handling.

    `mask`: the signal mask to restore once a signal can end the job as it would a fresh process.
    """
    import atexit
    import threading
    import traceback

    from ftbench.cli import main

    try:
        try:
            if mask is not None:  # a SIGINT held back since the fork raises KeyboardInterrupt here
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    try:
        threading._shutdown()  # wait for non-daemon threads, as interpreter exit does
    except Exception:
        pass
    atexit._run_exitfuncs()
    for f in (sys.stdout, sys.stderr):
        try:
            if f is not None:
                f.flush()
        except Exception:
            code = code or 120  # as Python does when flushing stdout fails
    if code == -signal.SIGINT:  # an uncaught KeyboardInterrupt ends the process by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    return code & 0xFF


def main(argv: list[str] | None = None) -> int:
    """Run the fork server on `--socket` (`python -m ftbench.runtime.forkserver`); return the exit code."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m ftbench.runtime.forkserver", description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True, help="Unix socket path to listen on (its folder must exist)")
    ap.add_argument("--parent", type=int, help="exit when this process (the workflow) is gone")
    args = ap.parse_args(argv)
    if args.parent is not None and os.getppid() != args.parent:
        return 0
    server = Server(args.socket, args.parent)
    try:
        server.preload()
    except RuntimeError as err:
        _log(f"not serving: {err}")
        return 1
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
