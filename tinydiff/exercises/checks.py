"""Checks for exercise tests whose failure messages teach.

Each check names the exercise and the quantity, shows expected against actual, and guesses the likely cause: a test
passes ``likely`` pairs ``(wrong_value, "did you ...?")``, the results of common mistakes; when the student's answer
matches one of them, the message says which mistake it was.

    expect_close("ex1_1", "x_t", actual, expected, likely=[(x0 * ab + eps * (1 - ab), "did you forget the sqrt?")])
"""

from __future__ import annotations

import numpy as np

from tinydiff.exercises.markers import project_root, scan_project

_TITLES: dict[str, str] | None = None


def exercise_name(exercise_id: str) -> str:
    """``ex2_1`` -> ``"Exercise 2.1 (cosine schedule)"``, from the region headers."""
    global _TITLES
    if _TITLES is None:
        _TITLES = {k: ex.title for k, ex in scan_project(project_root())[0].items()}
    number = exercise_id[2:].replace("_", ".")
    title = _TITLES.get(exercise_id)
    return f"Exercise {number} ({title})" if title else f"Exercise {number}"


def _show(a: np.ndarray, n: int = 6) -> str:
    flat = np.asarray(a, dtype=np.float64).reshape(-1)
    body = np.array2string(flat[:n], precision=6, separator=", ", max_line_width=400)
    return f"{body[:-1]}, ...] (shape {np.shape(a)})" if flat.size > n else f"{body} (shape {np.shape(a)})"


def expect_close(exercise_id: str, quantity: str, actual, expected, *, rtol: float = 1e-6, atol: float = 1e-8,
                 likely: list[tuple[object, str]] = (), hint: str = "") -> None:
    """Assert ``actual`` is ``expected`` within tolerance; otherwise fail with a message that points at the mistake."""
    name = exercise_name(exercise_id)
    expected = np.asarray(expected)
    if actual is None:
        raise AssertionError(f"{name}: {quantity} is None. Did you forget to return it?")
    actual = np.asarray(actual)
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: {quantity} has shape {actual.shape}, expected {expected.shape}. "
                             "Check your broadcasting: per-step coefficients are (B, 1, ..., 1).")
    if np.allclose(actual, expected, rtol=rtol, atol=atol):
        return
    err = np.abs(actual.astype(np.float64) - expected)
    where = np.unravel_index(int(np.nanargmax(np.where(np.isnan(err), np.inf, err))), err.shape) if err.size else ()
    lines = [f"{name}: {quantity} is wrong.",
             f"  expected: {_show(expected)}",
             f"  actual:   {_show(actual)}",
             f"  largest error {float(np.nan_to_num(err[where], nan=np.inf)):.3g} at index {tuple(int(i) for i in where)}"
             f" (tolerance {atol:g} + {rtol:g} * |expected|)"]
    cause = next((why for wrong, why in likely if np.shape(wrong) == actual.shape
                  and np.allclose(actual, wrong, rtol=max(rtol, 1e-6), atol=max(atol, 1e-8))), None)
    if not np.all(np.isfinite(actual)):
        cause = cause or "your result contains NaN or inf: a division by zero, or sqrt/log of a negative number?"
    if cause:
        lines.append(f"  Likely cause: {cause}")
    elif hint:
        lines.append(f"  Hint: {hint}")
    raise AssertionError("\n".join(lines))


def expect_true(exercise_id: str, condition: bool, message: str) -> None:
    """Assert a property of the answer (a range, a sign, a monotonicity), explaining it when it fails."""
    if not condition:
        raise AssertionError(f"{exercise_name(exercise_id)}: {message}")


def expect_gradients_ok(exercise_id: str, module, *inputs, **kwargs) -> None:
    """The float64 gradient check of ``tinydiff.nn.gradcheck`` with its per-tensor report in the failure message."""
    from tinydiff.nn.gradcheck import check_module

    kwargs.setdefault("verbose", False)
    report = check_module(module, *inputs, **kwargs)
    if not report.ok:
        why = "\n".join(f"  {k}: {report.hints.get(k, '')}" for k in report.failures())
        raise AssertionError(f"{exercise_name(exercise_id)}: {type(module).__name__}.backward fails the gradient "
                             f"check (finite differences in float64).\n{report}\nLikely causes:\n{why}")
