"""Run `python -m ftbench ...` through the fork server when the workflow runs one.

The server is found by FTBENCH_FORKSERVER_SOCKET (see ftbench.runtime.forkserver); standard library
only, so this start-up stays cheap. Without a reachable, matching server the job runs in this
process as before (FTBENCH_FORKSERVER_DEBUG=1 prints why a server refused a job). Signals the
client gets go to the job's process group through the server; a server that says the run is
being interrupted gets no fallback run: the client dies of SIGINT.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time

SOCKET_ENV = "FTBENCH_FORKSERVER_SOCKET"  # = forkserver.SOCKET_ENV (not imported: keep this light)
PROTOCOL = 2
_FORWARD = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _compat(env: dict) -> dict:
    # Mirrors forkserver.compat_key (a test checks they agree).
    return {
        "protocol": PROTOCOL,
        "prefix": sys.prefix,
        "executable": os.path.realpath(sys.executable),
        "version": sys.version,
        "flags": list(sys.flags),
        "warnoptions": list(sys.warnoptions),
        "xoptions": {k: str(v) for k, v in sys._xoptions.items()},
        "startup_env": {k: v for k, v in env.items() if k.startswith("PYTHON") and k != "PYTHONUNBUFFERED"},
    }


def _server_alive(path: str) -> bool:
    try:
        with open(os.path.join(os.path.dirname(path), "pid")) as f:
            os.kill(int(f.read()), 0)
        return True
    except (OSError, ValueError):
        return False


def _connect(path: str, wait: float) -> socket.socket | None:
    """Return a connection, waiting for a server still importing (its socket appears when it is ready)."""
    deadline = time.monotonic() + wait
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
        if os.path.exists(path) or not _server_alive(path) or time.monotonic() > deadline:
            return None  # stale socket, no server, or it takes too long: run here
        time.sleep(0.1)


def _lines(sock: socket.socket):
    buf = b""
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield json.loads(line)
        chunk = sock.recv(4096)
        if not chunk:
            return
        buf += chunk


def _forward(sock: socket.socket, pid: int, signum: int) -> None:
    """Have the server send `signum` to the job's process group.

    Through the server, not directly: it sends one SIGINT for one Ctrl-C even when the workflow asks
    it to interrupt every job at the same moment.
    """
    try:
        sock.sendall(json.dumps({"signal": int(signum)}).encode() + b"\n")
    except OSError:  # the server is gone (its jobs die with it): signal the job directly
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def run_via_server(argv: list[str], path: str, wait: float = 300.0) -> int | None:
    """Return the job's exit status when the server ran it; None when it would not (run it here)."""
    sock = _connect(path, wait)
    if sock is None:
        return None
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            pass
    env = dict(os.environ)
    umask = os.umask(0)
    os.umask(umask)
    main = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "__main__.py")
    try:
        request = {
            "argv": argv,
            "cwd": os.getcwd(),
            "env": env,
            "umask": umask,
            "fds": fds,
            "main": main,
            "compat": _compat(env),
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        }
        data = json.dumps(request).encode()
    except (OSError, ValueError):  # e.g. a deleted working folder: the plain run reports it
        sock.close()
        return None
    child = []
    pending = []

    def forward(signum, _frame):
        if child:
            _forward(sock, child[0], signum)
        else:
            pending.append(signum)

    try:
        socket.send_fds(sock, [struct.pack("!I", len(data)) + data], fds)
        replies = _lines(sock)
        first = next(replies, None)
        if first is not None and "interrupted" in first:
            # the workflow is being stopped: end as a job the Ctrl-C reached would, not run it here
            print(f"ftbench: not started: {first['interrupted']}", file=sys.stderr)
            sock.close()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
            return 128 + signal.SIGINT
        if first is None or "refused" in first:
            if first and os.environ.get("FTBENCH_FORKSERVER_DEBUG"):
                print(f"ftbench: fork server refused: {first['refused']}", file=sys.stderr)
            sock.close()
            return None
        # From here the job runs in the server's child: relay signals, wait for its status.
        for sig in _FORWARD:
            signal.signal(sig, forward)
        child.append(int(first["pid"]))
        for sig in pending:
            _forward(sock, child[0], sig)
        status = None
        for reply in replies:
            if "status" in reply:
                status = int(reply["status"])
                break
    except (OSError, ValueError) as err:
        if not child:
            return None
        print(f"ftbench: lost the fork server while job {child[0]} ran ({err})", file=sys.stderr)
        return 1
    finally:
        sock.close()
    if status is None:
        print(f"ftbench: the fork server stopped while job {child[0]} ran", file=sys.stderr)
        return 1
    if os.WIFSIGNALED(status):  # die the way the job died, as a shell expects
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        return 128 + sig
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str] | None = None) -> int:
    """Run `ftbench` with `argv` through the fork server when one serves, else in this process; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    path = os.environ.get(SOCKET_ENV)
    if path:
        code = run_via_server(argv, path)
        if code is not None:
            return code
    from ftbench.cli import main as cli_main

    return cli_main(argv)
