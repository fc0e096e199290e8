"""`gmnas status`, `gmnas tree` and `--help` answer without importing torch (nor pandas,
matplotlib or the plugin registries): they are the commands people run most often."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("torch", "pandas", "matplotlib", "gmnas_cli.spaces", "gmnas_cli.algorithms")


def _loaded_after(code: str) -> dict[str, bool]:
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_status_and_tree_modules_import_no_torch():
    loaded = _loaded_after("import gmnas_cli.stages.status, gmnas_cli.stages.tree, gmnas_cli.cli.app")
    assert not any(loaded.values()), loaded


def test_status_and_tree_commands_run_without_torch(tmp_path, small_ref):
    code = (f"from gmnas_cli.cli.app import run_command\n"
            f"run_command('status', ['out_dir={tmp_path}'])\n"
            f"run_command('status', ['out_dir={small_ref.parent}', 'name={small_ref.name}'])\n"
            f"run_command('tree', ['out_dir={small_ref.parent}', 'name={small_ref.name}'])\n"
            f"from gmnas_cli.cli.app import main\nsys.argv = ['gmnas', 'status', '--help']\nmain()")
    loaded = _loaded_after(code)
    assert not any(loaded.values()), loaded

