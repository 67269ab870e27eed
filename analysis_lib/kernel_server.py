"""Kernels forked from a server that has imported what the notebooks import (Linux): the build
starts a :class:`KernelServer` while it validates the data, and the build's kernel manager
(:class:`analysis_lib.kernels.BuildKernelManager`) asks it for each notebook's kernel instead of
starting a new Python process that imports NumPy, pandas, SciPy, matplotlib, ipykernel and the
library again (1.5 to 3 s of CPU per notebook on the 2-core machine). Only standard-library
imports here: the build imports this module whether or not a notebook runs."""

from __future__ import annotations

import builtins
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from importlib import import_module

# ipykernel_launcher, with the debugger's import refused (ipykernel then runs without it) and, as the
# launcher does, the working directory taken off the import path
LAUNCH = ("import sys; sys.modules['debugpy'] = None; sys.path[0] == '' and sys.path.pop(0); "
          "from ipykernel import kernelapp; kernelapp.launch_new_instance()")

SERVER_ENVIRONMENT = "ANALYSIS_LIB_KERNEL_SERVER"
# what the notebooks import, imported once by the server instead of once per kernel: the kernel
# and the library before the first kernel is forked, the rest while no kernel is asked for (a
# kernel forked before a module is imported here imports it itself when it needs it, as before)
PRELOAD = ("ipykernel.kernelapp", "ipykernel.ipkernel", "analysis_lib.study")
PRELOAD_WHEN_IDLE = ("matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.backends.backend_pdf",
                     "matplotlib.patches", "scipy.special", "scipy.optimize", "scipy.stats", "formulaic",
                     "fontTools.subset", "docx", "analysis_lib.figures", "analysis_lib.tables",
                     "analysis_lib.narrative", "analysis_lib.audit")


def forking_possible() -> bool:
    """Kernels are forked on Linux only (``fork`` after NumPy is imported is safe there with one
    BLAS thread; macOS's system libraries are not fork-safe) and with process file descriptors
    (``pidfd``, Linux 5.3), through which the build watches and signals a process it did not start."""
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


class KernelServer:
    """A process that imports what the notebooks import (:data:`PRELOAD`) once, while the build
    validates the data, and then forks a kernel for each notebook: a kernel starts with NumPy,
    pandas, SciPy, matplotlib, ipykernel and the library already imported (shared with the
    server until written), instead of importing them itself (1.5 to 3 s of CPU per notebook).

    ``env``: the environment of the server, i.e. what the kernels' modules see when they are
    imported (one BLAS thread, the heap settings); each kernel then gets its own environment,
    working directory and arguments, as a new process would. The server stops, and stops its
    kernels, when the build closes it or exits (it reads its standard input to the end).
    """

    def __init__(self, env: dict[str, str], cwd: str | os.PathLike | None = None):
        self.address = os.path.join(tempfile.gettempdir(), f"analysis-lib-kernels-{uuid.uuid4().hex}")
        # run as a script (the package, which imports pandas, is imported after the socket is bound),
        # in the kernels' working directory (matplotlib reads a matplotlibrc there when imported)
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), self.address],
                                        stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=cwd,
                                        start_new_session=True)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.address) and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # bound within a few milliseconds: no kernel asks before it listens

    def close(self) -> None:
        """Stop the server and every kernel it forked (which the build has stopped already)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if os.path.exists(self.address):
            os.unlink(self.address)

    def __enter__(self) -> "KernelServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serve() -> None:
    """The server's main loop (``python kernel_server.py ADDRESS``): listen on the Unix socket ADDRESS at
    once (requests wait there while the modules are imported), import :data:`PRELOAD`, then
    import :data:`PRELOAD_WHEN_IDLE` one by one while no request waits, and answer each request
    (one JSON line: ``argv``, ``env``, ``cwd``) by forking a kernel and sending its process ID,
    until standard input ends; then kill the kernels still running."""
    sys.modules["debugpy"] = None  # as LAUNCH: the kernels start without the debugger
    if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)  # the script's folder, whose modules would hide packages of the same name
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sys.argv[1])
    listener.listen(16)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # as ipykernel sets it
    # pandas chooses a default when imported from whether it runs in a kernel (display.max_columns:
    # 20 in a kernel, 0 in a terminal), asking get_ipython(), which a kernel defines and has a
    # "kernel": it is imported here as it would be there
    builtins.get_ipython = _InKernel
    try:
        _import("pandas")
    finally:
        del builtins.get_ipython
    for name in PRELOAD:
        _import(name)
    forkable = threading.active_count() == 1  # a thread would not survive the fork: start kernels as usual
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels are reaped by the system
    kernels, idle = [], list(PRELOAD_WHEN_IDLE)
    while True:
        ready, _, _ = select.select([listener, sys.stdin.fileno()], [], [], 0 if idle else None)
        if not ready:
            _import(idle.pop(0))
            continue
        if sys.stdin.fileno() in ready and not os.read(sys.stdin.fileno(), 4096):
            break
        if listener in ready:
            connection, _ = listener.accept()
            with connection:
                request = json.loads(connection.makefile("r").readline())
                pid = os.fork() if forkable else -1
                if pid == 0:
                    _become_kernel(request, listener, connection)
                if pid > 0:
                    try:
                        kernels.append(os.pidfd_open(pid))
                    except ProcessLookupError:
                        pass
                connection.sendall(f"{pid}\n".encode())
    for fd in kernels:
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(0)


class _InKernel:
    """What ``get_ipython()`` is to a module imported in a kernel, for pandas' question: an object
    with a ``kernel`` (pandas.core.config_init.is_terminal)."""

    kernel = True


def _import(name: str) -> None:
    try:
        import_module(name)
    except Exception:  # noqa: BLE001 - a module that fails here is imported (and fails) in the kernel
        pass


def _become_kernel(request: dict, listener: socket.socket, connection: socket.socket) -> None:
    """In the forked child: the process a kernel launch would have started (a session of its own,
    standard input from the null device, the request's environment, directory and arguments),
    running ipykernel as :data:`LAUNCH` does; never returns."""
    code = 1
    try:
        listener.close()
        connection.close()
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.pop(SERVER_ENVIRONMENT, None)  # a build run inside the kernel starts a server of its own
        notebook = request["env"].get("ANALYSIS_LIB_NOTEBOOK", "")
        if notebook:  # the process name says which notebook it runs (benchmarks/benchmark_scale.py)
            with open("/proc/self/comm", "w") as comm:
                comm.write(f"kernel {notebook}"[:15])
        sys.argv = list(request["argv"])
        if request["env"].get("JPY_PARENT_PID", "").isdigit():  # ipykernel reads it when imported: here, in the server
            sys.argv.append(f"--IPKernelApp.parent_handle={request['env']['JPY_PARENT_PID']}")
        import_module("ipykernel.kernelapp").launch_new_instance()  # imported by the server already
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.stdout.flush()
        os._exit(code)


class ForkedKernel:
    """The handle jupyter_client keeps of a kernel process (the part of :class:`subprocess.Popen`
    it uses), for a kernel forked by the server: watched and signalled through a process file
    descriptor, which stays bound to that process even if its ID is reused. Its exit status
    belongs to its parent, the server: ``returncode`` is 0 once it has exited, or minus the signal
    that the build sent to kill it."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._signal = 0
        self._fd = os.pidfd_open(pid)

    @classmethod
    def start(cls, address: str, argv: list[str], env: dict[str, str], cwd: str) -> "ForkedKernel | None":
        """Ask the server at ``address`` for a kernel; ``None`` when the server cannot fork."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(address)
            client.sendall((json.dumps({"argv": argv, "env": env, "cwd": cwd}) + "\n").encode())
            pid = int(client.makefile("r").readline() or -1)
        return cls(pid) if pid > 0 else None

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._fd], [], [], 0)[0]:
            self.returncode = -self._signal if self._signal else 0
            os.close(self._fd)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            select.select([self._fd], [], [], 0.05)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            if signum in (signal.SIGKILL, signal.SIGTERM):
                self._signal = signum
            signal.pidfd_send_signal(self._fd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


if __name__ == "__main__":
    serve()
