"""The import contract (pyproject's [tool.importlinter]): layers go one way and no module imports itself in a cycle.

`lint-imports` walks a package's folders; hostwarden is installed editable through a path hook (no folder to walk),
so the test lays out a `hostwarden/` view of symlinks to the source folders and points PYTHONPATH at it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ("agent", "collectors", "rules", "exporters", "config")
LINT = Path(sys.executable).with_name("lint-imports")


def _view(tmp: Path, copy: tuple[str, ...] = ()) -> Path:
    pkg = tmp / "hostwarden"
    pkg.mkdir()
    for name in SOURCES:
        if name in copy:
            shutil.copytree(ROOT / name, pkg / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (pkg / name).symlink_to(ROOT / name)
    return tmp


def _lint(view: Path) -> subprocess.CompletedProcess[str]:
    if not LINT.exists():
        pytest.fail(f"{LINT} is missing: install the test extra (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(view), "NO_COLOR": "1"}
    return subprocess.run([str(LINT), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_import_contract_is_kept(tmp_path: Path) -> None:
    res = _lint(_view(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 kept, 0 broken" in res.stdout


@pytest.mark.parametrize(("module", "source", "contract"), [
    ("agent/core/_upward.py", "from hostwarden.agent.daemon import Agent\n", "layers go one way"),
    ("agent/incidents/_upward.py", "import hostwarden.exporters.receiver\n", "layers go one way"),
    ("rules/_sideways.py", "import hostwarden.collectors.cpu\n", "layers go one way"),
    ("agent/core/_cycle.py", "import hostwarden.agent.core.samples\n", "no import cycles"),
])
def test_import_contract_catches_a_violation(tmp_path: Path, module: str, source: str, contract: str) -> None:
    view = _view(tmp_path, copy=("agent", "rules"))
    (view / "hostwarden" / module).write_text(source)
    if module.endswith("_cycle.py"):  # and the other way round: samples imports the new module
        samples = view / "hostwarden" / "agent" / "core" / "samples.py"
        samples.write_text(samples.read_text() + "\nfrom hostwarden.agent.core import _cycle  # noqa\n")
    res = _lint(view)
    assert res.returncode != 0, res.stdout
    broken = res.stdout[res.stdout.index("Broken contracts"):]
    assert contract in broken, res.stdout
