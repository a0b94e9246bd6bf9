"""The layers contract (pyproject [tool.importlinter], DESIGN.md "Layout") holds, and an upward import breaks it.

The probes run `lint-imports` on a copy of the product packages, so the real tree is never modified.
"""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contract_settings(root: Path) -> tuple[list[str], set[str]]:
    """The root packages and every module named in the layers contract."""
    settings = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in settings["contracts"] if c["id"] == "layers"]
    named = {m.strip() for layer in contract["layers"] for m in layer.replace("|", ":").split(":")}
    return settings["root_packages"], named


def unlisted_config_modules(root: Path) -> set[str]:
    """config modules in no layer: `config` is listed module by module (see pyproject), so a new one must be added."""
    _, named = _contract_settings(root)
    return {f"config.{m.name}" for m in pkgutil.iter_modules([str(root / "config")])} - named


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(LINT_IMPORTS.parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The contract and the product packages' Python files, copied."""
    packages, _ = _contract_settings(ROOT)
    for package in packages:
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "templates", "static"),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_tree_keeps_the_layers_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("accounts/_layers_probe.py", "dashboard.views"),  # an app importing one above it
        ("config/pagination_probe.py", "jobs.models"),  # plumbing importing an app
        ("queues/_layers_probe.py", "config.urls"),  # an app importing the composition root
    ],
)
def test_a_function_level_upward_import_breaks_the_contract(tree_copy: Path, module: str, imported: str):
    importer = module.removesuffix(".py").replace("/", ".")
    if importer.startswith("config."):
        # A new plumbing module joins the bottom layer, as the pyproject comment asks.
        pyproject = tree_copy / "pyproject.toml"
        pyproject.write_text(
            pyproject.read_text().replace("config.pagination :", f"config.pagination : {importer} :")
        )
    (tree_copy / module).write_text(f"def probe():\n    import {imported}  # noqa: F401\n")
    result = lint_imports(tree_copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{importer} -> {imported}" in result.stdout, result.stdout


def test_every_config_module_is_in_a_layer(tree_copy: Path):
    assert unlisted_config_modules(ROOT) == set()
    (tree_copy / "config" / "new_plumbing.py").write_text("")
    assert unlisted_config_modules(tree_copy) == {"config.new_plumbing"}
