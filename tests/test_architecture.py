"""The architecture is a checked contract (import-linter, ``[tool.importlinter]`` in pyproject.toml): it holds
for the code as it is, and it bites: a stray framework import in a workflow, or a data module importing a
backend, breaks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    if not LINT.exists():
        pytest.skip(f"import-linter is not installed ({LINT} missing): `make setup` installs it")
    env = {"PATH": str(LINT.parent), "PYTHONPATH": str(root), "HOME": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def copy_of_the_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    shutil.copytree(ROOT / "earthport", root / "earthport", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_contracts_hold(copy_of_the_tree):
    done = _lint(copy_of_the_tree)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("workflows/evaluate.py", "import torch", "Workflows and the command line import no framework"),
        ("data/stats.py", "from earthport.backends.torch import runtime", "Layers"),
        ("metrics/weights.py", "import mindspore", "Framework-free packages import no framework"),
        ("models/fourcastnet/config.py", "from earthport.models.fourcastnet import torch", "Framework-free"),
    ],
)
def test_a_stray_import_breaks_a_contract(copy_of_the_tree, tmp_path, module, line, broken):
    tree = tmp_path / "tree"
    shutil.copytree(copy_of_the_tree, tree)
    path = tree / "earthport" / module
    path.write_text(path.read_text() + f"\n{line}  # a stray import\n")
    done = _lint(tree)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout and broken in done.stdout.replace("\n", " ")
