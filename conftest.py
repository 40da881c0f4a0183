"""Which tinydiff do the tests test? The one in THIS folder, whatever else is installed.

A student copy (``python -m tinydiff.exercises make-student``) lives beside the instructor's tree, which is often
installed in the same venv (``pip install -e .``). Plain ``pytest`` puts only ``tests/`` on ``sys.path``, so
``import tinydiff`` would find the installed, solved code and a blank exercise would pass. pytest loads this file
before any test module, so it puts this folder first on ``sys.path`` (and on PYTHONPATH, for the chapter scripts the
tests run in subprocesses) and checks that the import now finds it.

If tinydiff was imported before this file (a ``-p`` plugin: the grader points PYTHONPATH at the copy it grades), that
choice stands. The header of every run names the tinydiff under test.
"""

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

if "tinydiff" not in sys.modules:
    sys.path.insert(0, str(HERE))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    import tinydiff

    if Path(tinydiff.__file__).resolve().parent != HERE / "tinydiff":
        raise pytest.UsageError(
            f"these tests would import tinydiff from {Path(tinydiff.__file__).parent}, not from this folder "
            f"({HERE / 'tinydiff'}), so they would test someone else's code. Run pytest from {HERE}, or "
            f"`pip install -e {HERE}` in this venv.")


def pytest_report_header(config):
    import tinydiff

    return f"tinydiff under test: {Path(tinydiff.__file__).parent}"
