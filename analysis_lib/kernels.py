"""The kernels a build executes its notebooks in: the IPython kernel of the environment, started
and stopped as Jupyter does, without three costs that a batch run pays for nothing (measured on
the 2-core machine, per notebook; a default build starts six kernels, three on each worker):

- ``jupyter_client`` waits, once the kernel has answered, until no message has arrived on its
  output channel for 0.2 s (to drop the messages of the handshake). ``nbclient`` reads a cell's
  outputs by the cell's message ID and ignores every other message, so the wait is idle time:
  the kernel is ready when it has answered and its output channel is known to be connected.
- ipykernel imports the debugger (``debugpy``, 0.1 s of CPU) that JupyterLab's visual debugger
  uses; no one debugs an executed notebook, so the build's kernels start without it.
- A stopped kernel is polled every 0.1 s until it has exited; every 5 ms here.

They also talk to the build over Unix sockets of their own (each kernel's file names are new)
instead of TCP ports: jupyter_client picks free ports, releases them and lets the kernel bind
them, so two kernels starting at once on the two workers can pick the same port, and one dies
("Kernel died before replying to kernel_info", jupyter/jupyter_client#154; it failed one build
of a test suite here). Where there are no Unix sockets (Windows), TCP as before.

On Linux, while a build runs, a kernel is not started as a new process but forked from the build's
kernel server, which has imported ipykernel, pandas, matplotlib, SciPy and the library already
(:mod:`analysis_lib.kernel_server`; 1.5 to 3 s of CPU less per notebook); without a server, or
when it does not answer, as a new process.

What a notebook computes, and its outputs, are the same (tests/test_kernels.py executes a notebook
in these kernels, started and forked, and in Jupyter's own and compares the outputs)."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type, default

from .kernel_server import LAUNCH, SERVER_ENVIRONMENT, ForkedKernel


class BuildKernelClient(AsyncKernelClient):
    """A kernel client that is ready as soon as the kernel answers (see the module docstring)."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        """Ask for the kernel's info until it replies and a message has come on the output
        channel (which is then connected: messages sent before it was would be lost); raise
        ``RuntimeError`` when the kernel dies or ``timeout`` seconds pass, as jupyter_client does."""
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                try:
                    await self.iopub_channel.get_msg(timeout=0.2)
                    return
                except Empty:  # the output channel was not connected yet: ask again
                    pass
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")


class BuildKernelManager(AsyncKernelManager):
    """Starts the kernel of the notebook's kernel spec without the debugger, on Unix sockets of
    its own, hands out :class:`BuildKernelClient` and notices a stopped kernel within 5 ms."""

    client_factory = Type(BuildKernelClient, klass=AsyncKernelClient)  # the class client() makes

    @default("transport")
    def _transport_default(self) -> str:
        return "ipc" if os.name == "posix" else "tcp"

    @default("ip")
    def _ip_default(self) -> str:  # for ipc, the sockets' path prefix: new for every kernel
        if self.transport == "ipc":
            return os.path.join(tempfile.gettempdir(), f"analysis-lib-kernel-{uuid.uuid4().hex}")
        return super()._ip_default()

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        if cmd[1:3] == ["-m", "ipykernel_launcher"]:  # the IPython kernel; any other is started as specified
            cmd = [cmd[0], "-c", LAUNCH, *cmd[3:]]
        return cmd

    async def _async_wait(self, pollinterval: float = 0.1) -> None:
        await super()._async_wait(pollinterval=min(pollinterval, 0.005))

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        """Fork the kernel from the build's :class:`KernelServer` when there is one (its address in
        ``$ANALYSIS_LIB_KERNEL_SERVER``) and the kernel is the IPython kernel started as above;
        otherwise, or when the server does not answer, start it as a new process as Jupyter
        does. jupyter_client's documented place for launching kernels differently."""
        address = os.environ.get(SERVER_ENVIRONMENT)
        if address and kernel_cmd[1:3] == ["-c", LAUNCH]:
            try:
                env = {**(kw.get("env") or os.environ), "JPY_PARENT_PID": str(os.getpid())}  # as jupyter_client sets it
                process = ForkedKernel.start(address, ["-c", *kernel_cmd[3:]], env, str(kw.get("cwd") or os.getcwd()))
            except OSError:
                process = None
            if process is not None:
                provisioner = self.provisioner
                provisioner.process, provisioner.pid, provisioner.pgid = process, process.pid, process.pid
                provisioner.cwd = kw.get("cwd") or os.getcwd()
                self._reconcile_connection_info(provisioner.connection_info)
                return
        await super()._async_launch_kernel(kernel_cmd, **kw)
