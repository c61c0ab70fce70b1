"""The training notebooks: stored clean, and runnable end to end with papermill on a tiny project."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthetic import write_csv_dataset

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("train_retrieval.ipynb", "train_ranking.ipynb")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs_and_has_a_parameters_cell(name: str) -> None:
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "no code cells"
    for cell in code:
        assert cell.get("outputs") == [], f"{name}: a cell has stored outputs"
        assert cell.get("execution_count") is None, f"{name}: a cell has an execution count"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected one cell tagged 'parameters', found {len(tagged)}"


# --- end to end -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder on a tiny synthetic dataset, taken through fetch, prepare, split and features."""
    from movierec.cli import main

    base = tmp_path_factory.mktemp("notebooks")
    project = base / "project"
    project.mkdir()
    dataset = write_csv_dataset(base / "tiny-latest")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["source"] = str(dataset)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        for argv in (["data", "fetch"], ["data", "prepare"], ["split"], ["features"], ["baselines"]):
            assert main(argv) == 0, f"movierec {' '.join(argv)} failed"
    return project


@pytest.fixture(scope="module")
def python3_kernel(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Make the ``python3`` kernel this interpreter, whatever kernelspecs the machine has.

    A ``python3`` spec is written with ``sys.executable`` as its command and put first on
    JUPYTER_PATH, so a user-level ``python3`` spec pointing at another Python cannot
    shadow the venv's. (Without it, jupyter_client finds ``python3`` in the venv's
    ``share/jupyter/kernels`` or as ipykernel's native kernel, and runs it with
    ``sys.executable`` too.)
    """
    from ipykernel.kernelspec import write_kernel_spec

    data_dir = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(data_dir / "kernels" / "python3")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(data_dir))
        yield data_dir


def _run(name: str, project: Path, out_dir: Path, parameters: dict[str, Any]) -> Any:
    import nbformat
    import papermill as pm

    output = out_dir / name
    pm.execute_notebook(str(NOTEBOOKS / name), str(output), parameters={"project_dir": str(project), **parameters},
                        kernel_name="python3", cwd=str(project), progress_bar=False, execution_timeout=600)
    return nbformat.read(output, as_version=4)


@pytest.fixture(scope="module")
def executed(tiny_project: Path, python3_kernel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both notebooks executed in order on the tiny project."""
    out_dir = tmp_path_factory.mktemp("executed")
    return {
        "retrieval": _run("train_retrieval.ipynb", tiny_project, out_dir,
                          {"epochs": 1, "embedding_dim": 16, "seeds": [42]}),
        "ranking": _run("train_ranking.ipynb", tiny_project, out_dir, {"epochs": 1, "candidates": 20, "seeds": [42]}),
    }


def _errors(nb: Any) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_notebooks_run_without_errors(executed: dict[str, Any]) -> None:
    for name, nb in executed.items():
        assert not _errors(nb), f"{name}: {_errors(nb)}"
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1, f"{name}: papermill did not inject the parameters"
        assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_notebooks_export_the_served_models(executed: dict[str, Any], tiny_project: Path) -> None:
    import movierec  # noqa: F401  (Keras 2 before TensorFlow)
    import tensorflow as tf

    retrieval = tiny_project / "checkpoints" / "retrieval"
    for tower in ("query_tower", "candidate_tower"):
        assert (retrieval / tower / "saved_model.pb").exists(), tower
    assert (tiny_project / "checkpoints" / "ranking" / "pointwise" / "saved_model.pb").exists()

    query = tf.saved_model.load(str(retrieval / "query_tower"))
    assert "serving_default" in query.signatures
    assert list(query.signatures["serving_default"].structured_outputs) == ["embedding"]
    assert query.signatures["serving_default"].structured_outputs["embedding"].shape[-1] == 16

    with open(tiny_project / "reports" / "plots" / "retrieval_epochs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["epoch"] == "1"
    with open(tiny_project / "reports" / "plots" / "ranking_epochs.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 1
    assert json.loads((tiny_project / "reports" / "retrieval.json").read_text())["seeds"] == [42]
    # the notebook's run is an MLflow run with a registered version, in the project's own store
    registered = json.loads((tiny_project / "reports" / "registry.json").read_text())
    assert registered["version"] == 1 and registered["store"].startswith("embedded")
    assert (tiny_project / "mlflow" / "mlflow.db").exists()
