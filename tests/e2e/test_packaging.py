"""``setup.py`` as Dataflow's ``--setup_file``: the sdist alone carries what a worker needs."""

import json
import site
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from support.corpus import REAL, ROOT, reference


def sh(*args, cwd=None):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=900)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_sdist_installs_into_a_fresh_environment_and_scores(tmp_path):
    # What Beam's stager runs for --setup_file.
    sh(sys.executable, "setup.py", "-q", "sdist", "--dist-dir", tmp_path / "dist", cwd=ROOT)
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    assert any(n.endswith("configs/default.yaml") for n in names)
    assert not any("/tests/" in n for n in names)

    # A new virtual environment; third-party dependencies are visible from this one (so the
    # test needs no network), the package itself comes only from the sdist.
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", venv)
    py = venv / "bin" / "python"
    fresh_site = Path(sh(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (fresh_site / "outer-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    sh(py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", sdist)
    sh(py, "-m", "pip", "check")  # every declared dependency is satisfied

    where = sh(py, "-c", "import nsfw_scan.model, os; print(os.path.dirname(nsfw_scan.model.__file__))",
               cwd=tmp_path).stdout.strip()
    assert where.startswith(str(venv))
    result = subprocess.run([venv / "bin" / "nsfw-scan", "score", REAL / "grace_hopper.jpg"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert abs(line["yahoo_score"] - reference("real")["grace_hopper.jpg"]) < 1e-3


@pytest.mark.slow
def test_editable_install_twice_into_the_same_environment(tmp_path):
    # pyproject.toml's [build-system] makes pip build editable installs through setuptools'
    # PEP 660 backend; without it, installing again fell back to `setup.py develop`, which
    # cannot map the source folders under `nsfw_scan`.
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", venv)
    py = venv / "bin" / "python"
    fresh_site = Path(sh(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (fresh_site / "outer-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    for _ in range(2):
        sh(py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", ROOT)
    where = sh(py, "-c", "import nsfw_scan.pipeline.cli as cli; print(cli.__file__)", cwd=tmp_path).stdout.strip()
    assert where == str(ROOT / "pipeline" / "cli.py")


GROUPED = """
import os, pathlib, pytest
pytestmark = [pytest.mark.xdist_group("engines")]
RAN = pathlib.Path(__file__).parent / "ran"
@pytest.fixture(params=["flink", "spark"])
def engine(request):
    return request.param
def test_engine(engine):
    (RAN / f"{pathlib.Path(__file__).stem}-{engine}").write_text(os.environ["PYTEST_XDIST_WORKER"])
def test_alone():
    (RAN / f"{pathlib.Path(__file__).stem}-alone").write_text(os.environ["PYTEST_XDIST_WORKER"])
"""


def test_the_suites_engine_group_runs_in_one_process(tmp_path):
    """The README's test command (``-n 2 --dist loadgroup``) keeps the tests marked
    ``xdist_group("engines")`` in one process, parametrized ones too: one Flink and one Spark
    cluster for the suite, not one per process (the installed pytest and pytest-xdist agree)."""
    (tmp_path / "ran").mkdir()
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / name).write_text(GROUPED)
    for i in range(4):  # tests of no group, which the other process takes
        (tmp_path / f"test_other_{i}.py").write_text("def test_other():\n    pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "-n", "2", "--dist", "loadgroup",
                           "-p", "no:cacheprovider", "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    workers = {path.name: path.read_text() for path in (tmp_path / "ran").iterdir()}
    assert len(workers) == 6 and len(set(workers.values())) == 1, workers
