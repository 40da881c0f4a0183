"""A pytest plugin for the grader: writes each test's exercise markers, outcome and message to a JSON file.

Loaded by ``python -m tinydiff.exercises grade`` as ``-p tinydiff.exercises.pytest_plugin`` with the report path in
the environment variable ``TINYDIFF_GRADE_REPORT``. It needs nothing beyond pytest.
"""

from __future__ import annotations

import json
import os
import re

import pytest

_EX = re.compile(r"ex\d+_\d+")
_results: dict[str, dict] = {}
_collect_errors: list[dict] = []


@pytest.hookimpl(hookwrapper=True, tryfirst=True)   # outermost: it reads the report after conftest hooks changed it
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    entry = _results.setdefault(item.nodeid, {
        "nodeid": item.nodeid,
        "exercises": sorted({m.name for m in item.iter_markers() if _EX.fullmatch(m.name)}),
        # ex_id -> [part, weight]: @pytest.mark.ex8_1(part="stochastic step (eta > 0)", points=2)
        "parts": {m.name: [m.kwargs.get("part", ""), m.kwargs.get("points", 1)]
                  for m in item.iter_markers() if _EX.fullmatch(m.name)},
        "outcome": "passed",
        "message": "",
        "seconds": 0.0,
    })
    entry["seconds"] += rep.duration
    if rep.failed:
        entry["outcome"] = "failed" if rep.when == "call" else "error"
        entry["message"] = call.excinfo.exconly() if call.excinfo is not None else str(rep.longrepr)
    elif rep.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        entry["message"] = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)


def pytest_collectreport(report):
    if report.failed:
        _collect_errors.append({"nodeid": report.nodeid, "message": str(report.longrepr)[-2000:]})


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("TINYDIFF_GRADE_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"tests": list(_results.values()), "collect_errors": _collect_errors}, f, indent=1)
