"""The build's kernels: the environment's IPython kernel without the debugger, ready when it has
answered, and a notebook executed in it has the outputs it has in Jupyter's own kernel."""

import os
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill as pm

from analysis_lib.build import KERNEL_MANAGER
from analysis_lib.kernels import LAUNCH, BuildKernelClient, BuildKernelManager

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
    ]
    nbformat.write(nb, path)


def _outputs(path):
    return [cell.get("outputs") for cell in nbformat.read(path, as_version=4).cells]


def test_a_notebook_has_the_same_outputs_in_the_builds_kernel_as_in_jupyters(tmp_path):
    source = tmp_path / "nb.ipynb"
    _notebook(source)
    sockets = set(Path(tempfile.gettempdir()).glob("analysis-lib-kernel-*"))
    pm.execute_notebook(source, tmp_path / "ours.ipynb", parameters={"x": 7}, kernel_name="python3", progress_bar=False,
                        shutdown_kernel="immediate", cwd=str(tmp_path), kernel_manager_class=KERNEL_MANAGER)
    pm.execute_notebook(source, tmp_path / "jupyter.ipynb", parameters={"x": 7}, kernel_name="python3",
                        progress_bar=False, cwd=str(tmp_path))
    ours, theirs = _outputs(tmp_path / "ours.ipynb"), _outputs(tmp_path / "jupyter.ipynb")
    assert ours[2][0]["text"] == "first output 7\n"
    assert ours[3][0]["text"] == "True True\n" and theirs[3][0]["text"] == "False True\n"  # debugger refused
    assert ours[4][0]["data"]["text/plain"] == "{'a': [7, 2.5]}"
    assert ours[5][0]["data"]["text/html"] == "<b>shown</b>" and ours[5][1]["text"] == "then\n"
    assert ours[:3] + ours[4:] == theirs[:3] + theirs[4:]
    assert set(Path(tempfile.gettempdir()).glob("analysis-lib-kernel-*")) == sockets  # the kernel's sockets removed
