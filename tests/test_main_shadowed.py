"""`python -m tinydiff` from the folder that holds a clone named `tinydiff`: one clear line, not an ImportError."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What an editable install (pip install -e .) does: a finder that serves tinydiff's modules from the source tree, asked
# only after the normal path search, so an empty ./tinydiff folder wins the top-level name as a namespace package.
MIMIC_EDITABLE_INSTALL = f"""
import importlib.machinery, runpy, sys
class EditableFinder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if not name.startswith("tinydiff."):
            return None                      # the top-level name: left to the normal search (finds ./tinydiff)
        parent = {str(ROOT)!r} + "/" + "/".join(name.split(".")[:-1])
        return importlib.machinery.PathFinder.find_spec(name, [parent])
sys.meta_path.insert(0, EditableFinder)
runpy.run_module("tinydiff", run_name="__main__", alter_sys=True)
"""


def test_python_m_tinydiff_beside_a_clone_named_tinydiff_explains_itself(tmp_path):
    (tmp_path / "tinydiff" / "chapters").mkdir(parents=True)            # the clone: a folder without __init__.py
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", MIMIC_EDITABLE_INSTALL, "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "hides the installed package" in proc.stderr and "tinydiff demo" in proc.stderr, proc.stderr
