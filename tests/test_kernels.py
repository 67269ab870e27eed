"""The build's kernels: the environment's IPython kernel without the debugger, ready when it has
answered, forked from the build's kernel server where it can be, and a notebook executed in it
has the outputs it has in Jupyter's own kernel."""

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill as pm
import psutil
import pytest

from analysis_lib.build import HEAP_KEPT, KERNEL_MANAGER, SINGLE_THREADED, kernel_server
from analysis_lib.kernel_server import SERVER_ENVIRONMENT, KernelServer, forking_possible
from analysis_lib.kernels import LAUNCH, BuildKernelClient, BuildKernelManager

needs_fork = pytest.mark.skipif(not forking_possible(), reason="kernels are forked on Linux only")

KERNELSPEC = {"name": "python3", "language": "python", "display_name": "Python 3"}


def test_the_ipython_kernel_is_started_without_the_debugger_and_other_kernels_as_specified():
    km = BuildKernelManager(kernel_name="python3")
    cmd = km.format_kernel_cmd()
    assert cmd[:3] == [sys.executable, "-c", LAUNCH] and cmd[3] == "-f"  # then the connection file
    assert "sys.modules['debugpy'] = None" in LAUNCH and "launch_new_instance()" in LAUNCH
    assert isinstance(km.client(), BuildKernelClient)
    assert KERNEL_MANAGER == f"{BuildKernelManager.__module__}.{BuildKernelManager.__name__}"
    if os.name == "posix":  # Unix sockets with a new name for every kernel: no port two kernels can both pick
        other = BuildKernelManager(kernel_name="python3")
        assert km.transport == other.transport == "ipc" and km.ip != other.ip
        assert Path(km.ip).parent == Path(tempfile.gettempdir())


def _notebook(path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('first output', x)"),  # lost if the output channel were not connected
        nbformat.v4.new_code_cell("import sys\nprint(sys.modules.get('debugpy', 'never imported') is None, "
                                  "'' in sys.path)"),
        nbformat.v4.new_code_cell("{'a': [x, 2.5]}"),
        nbformat.v4.new_code_cell("from IPython.display import HTML, display\ndisplay(HTML('<b>shown</b>'))\nprint('then')"),
        nbformat.v4.new_code_cell(f"import os\nprint(os.getcwd() == {str(path.parent)!r}, os.environ.get('KERNEL_TEST'), "
                                  "os.environ.get('JPY_PARENT_PID'))"),  # the process that manages the kernel
        nbformat.v4.new_code_cell("import matplotlib\nprint(matplotlib.get_backend(), os.getpgid(0) == os.getpid())"),
        nbformat.v4.new_code_cell("import pandas as pd\npd.DataFrame({f'column {i}': [i] for i in range(30)})"),
        nbformat.v4.new_code_cell("print(os.getppid(), 'ANALYSIS_LIB_KERNEL_SERVER' in os.environ)"),
    ]
    nbformat.write(nb, path)


def _outputs(path):
    return [cell.get("outputs") for cell in nbformat.read(path, as_version=4).cells]


@pytest.mark.parametrize("forked", [False, pytest.param(True, marks=needs_fork)], ids=["started", "forked"])
def test_a_notebook_has_the_same_outputs_in_the_builds_kernel_as_in_jupyters(tmp_path, monkeypatch, forked):
    """Outputs, working directory, environment, matplotlib's backend, pandas' display of a wide
    table (whose default pandas sets when imported) and the kernel's own session are those of
    Jupyter's kernel, whether the build's kernel is started as a new process or
    forked from the kernel server (whose child it then is)."""
    source = tmp_path / "nb.ipynb"
    _notebook(source)
    monkeypatch.setenv("KERNEL_TEST", "passed on")
    server = None
    if forked:
        server = KernelServer({**os.environ, **SINGLE_THREADED, **HEAP_KEPT}, tmp_path)
        monkeypatch.setenv(SERVER_ENVIRONMENT, server.address)
    sockets = set(Path(tempfile.gettempdir()).glob("analysis-lib-kernel-*"))
    pm.execute_notebook(source, tmp_path / "ours.ipynb", parameters={"x": 7}, kernel_name="python3", progress_bar=False,
                        shutdown_kernel="immediate", cwd=str(tmp_path), kernel_manager_class=KERNEL_MANAGER)
    if server is not None:
        server.close()
    pm.execute_notebook(source, tmp_path / "jupyter.ipynb", parameters={"x": 7}, kernel_name="python3",
                        progress_bar=False, cwd=str(tmp_path))
    ours, theirs = _outputs(tmp_path / "ours.ipynb"), _outputs(tmp_path / "jupyter.ipynb")
    parent, server_known = ours.pop()[0]["text"].split()
    theirs.pop()
    assert int(parent) == (server.process.pid if forked else os.getpid())
    assert server_known == "False"  # a build run in the kernel would start a server of its own
    assert ours[6][0]["text"] == f"True passed on {os.getpid()}\n"
    assert ours[7][0]["text"] == "module://matplotlib_inline.backend_inline True\n"
    assert "column 29" in ours[8][0]["data"]["text/plain"]  # as wide as pandas shows it in a kernel
    assert ours[2][0]["text"] == "first output 7\n"
    assert ours[3][0]["text"] == "True True\n" and theirs[3][0]["text"] == "False True\n"  # debugger refused
    assert ours[4][0]["data"]["text/plain"] == "{'a': [7, 2.5]}"
    assert ours[5][0]["data"]["text/html"] == "<b>shown</b>" and ours[5][1]["text"] == "then\n"
    assert ours[:3] + ours[4:] == theirs[:3] + theirs[4:]
    assert set(Path(tempfile.gettempdir()).glob("analysis-lib-kernel-*")) == sockets  # the kernel's sockets removed


@needs_fork
def test_the_kernel_server_forks_kernels_that_stop_with_it_and_the_build_starts_them_itself_without_it(monkeypatch):
    """A forked kernel is watched and stopped through its process file descriptor; the kernels
    still running when the server closes are killed; without a server (none started, or its
    address gone) the kernel is started as a new process; the build's server is there only while
    it runs notebooks, and its address leaves the environment with it."""

    async def started() -> BuildKernelManager:
        km = BuildKernelManager(kernel_name="python3")
        await km.start_kernel()
        return km

    async def forked_and_stopped(server) -> psutil.Process:
        km = await started()
        forked = psutil.Process(km.provisioner.pid)
        assert forked.ppid() == server.process.pid and await km.is_alive()
        await km.shutdown_kernel(now=True)
        assert not await km.is_alive() and not forked.is_running()
        left = await started()  # still running when the server closes
        assert await left.is_alive()
        return psutil.Process(left.provisioner.pid)

    with kernel_server() as server:
        assert os.environ[SERVER_ENVIRONMENT] == server.address
        running = asyncio.run(forked_and_stopped(server))
        assert running.ppid() == server.process.pid
    assert SERVER_ENVIRONMENT not in os.environ and server.process.poll() is not None
    deadline = time.monotonic() + 5
    while running.is_running() and running.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running.is_running() or running.status() == psutil.STATUS_ZOMBIE
    assert not os.path.exists(server.address)

    async def started_as_a_new_process() -> None:
        km = await started()
        try:
            assert psutil.Process(km.provisioner.pid).ppid() == os.getpid() and await km.is_alive()
        finally:
            await km.shutdown_kernel(now=True)

    monkeypatch.setenv(SERVER_ENVIRONMENT, server.address)  # gone: the kernel starts as a new process
    asyncio.run(started_as_a_new_process())
    with kernel_server(wanted=False) as none:
        assert none is None and os.environ[SERVER_ENVIRONMENT] == server.address  # left as it was


def test_a_server_that_cannot_start_leaves_the_kernels_to_start_as_new_processes(monkeypatch):
    import analysis_lib.build as build

    def refuse(*args, **kwargs):
        raise OSError("no process can be started")

    monkeypatch.delenv(SERVER_ENVIRONMENT, raising=False)
    monkeypatch.setattr(build, "KernelServer", refuse)
    with kernel_server() as server:
        assert server is None and SERVER_ENVIRONMENT not in os.environ
