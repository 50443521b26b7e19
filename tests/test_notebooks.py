"""Execute every ``notebooks/*.ipynb`` top to bottom, as a reader would.

Each notebook runs in a fresh IPython kernel on this interpreter (the project's venv),
with the notebook's directory as its working directory. The kernel is described by a
kernelspec written to a temporary directory, and Jupyter's runtime and IPython's profile
directories are temporary too, so nothing depends on (or writes to) the user's Jupyter
setup. A failing cell fails the test with the notebook name, the cell number, its source
and the error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
KERNEL_NAME = "python3"
CELL_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory):
    """A kernelspec named ``python3`` that runs ``sys.executable -m ipykernel_launcher``."""
    from ipykernel.kernelspec import write_kernel_spec

    root = tmp_path_factory.mktemp("jupyter")
    kernels = root / "kernels"
    write_kernel_spec(kernels / KERNEL_NAME,
                      overrides={"display_name": "Python 3 (sparkfs venv)",
                                 "argv": [sys.executable, "-m", "ipykernel_launcher",
                                          "-f", "{connection_file}"]})
    return root, kernels


@pytest.fixture
def jupyter_env(kernel_dirs, monkeypatch):
    root, _ = kernel_dirs
    for var, sub in (("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_CONFIG_DIR", "config"), ("IPYTHONDIR", "ipython")):
        (root / sub).mkdir(exist_ok=True)
        monkeypatch.setenv(var, str(root / sub))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")


def run_notebook(path: Path, kernels: Path) -> None:
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, as_version=4)
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
    client = NotebookClient(nb, km=km, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as exc:
        index, cell = _failed_cell(nb)
        where = f"cell {index}" if index is not None else "a cell"
        source = f":\n{cell.source}\n" if cell is not None else "\n"
        pytest.fail(f"{path.name}: {where} failed{source}{exc}", pytrace=False)


def _failed_cell(nb):
    """The first code cell whose outputs hold an error (the one that stopped the run)."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(o.get("output_type") == "error"
                                            for o in cell.get("outputs", [])):
            return i, cell
    return None, None


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no .ipynb files"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, kernel_dirs, jupyter_env):
    run_notebook(path, kernel_dirs[1])


def test_a_failing_cell_is_reported_with_its_error(tmp_path, kernel_dirs, jupyter_env):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\ncwd = os.getcwd()"),
                nbformat.v4.new_code_cell(f"assert cwd == {str(tmp_path)!r}, cwd"),
                nbformat.v4.new_code_cell("raise ValueError('boom from the notebook')")]
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(pytest.fail.Exception) as exc:
        run_notebook(path, kernel_dirs[1])
    msg = str(exc.value)
    assert "broken.ipynb: cell 2 failed" in msg
    assert "boom from the notebook" in msg and "ValueError" in msg
