"""Checked claims: a chapter's sentences about its own run, tested in that run.

A lecture that says "Heun's error falls like NFE^-2" or "the two samples are not told apart (p > 0.05)" states a fact
about the numbers it has just computed. ``claim`` makes such a sentence a check: it prints the sentence with the
measured numbers and a verdict, and ``finish`` (the chapter's last line) reports every claim that failed and exits
with status 1, so a chapter whose text no longer matches its run fails like a test (tests/test_chapters.py).

Quick mode (``--quick``) runs tiny sample sizes. A claim its sample cannot support is marked ``quick=False``: quick
mode prints it as "not judged in quick mode" and never gives a verdict on it. The mode is set once, by the chapters'
argument parsing (``viz.chapter_args`` calls ``set_mode``).

    claim(p > 0.05, "DDPM's samples and the data are not told apart: p = {p:.3f} > 0.05", p=p, quick=False)
    ...
    finish()   # last line of the chapter

The text is formatted with the numbers (``str.format``); numbers the text does not mention are appended.
"""

from __future__ import annotations

import string
import sys
from dataclasses import dataclass, field

PASS, FAIL, NOT_JUDGED = "pass", "FAIL", "not judged in quick mode"


@dataclass
class ClaimBook:
    """What one run has claimed: the mode and every claim's text and verdict, in order."""

    quick: bool = False
    results: list[tuple[str, str]] = field(default_factory=list)   # (verdict, formatted text)

    def failures(self) -> list[str]:
        return [text for verdict, text in self.results if verdict == FAIL]


_book = ClaimBook()


def set_mode(quick: bool) -> None:
    """Start a new run in full (``quick=False``) or quick mode; forgets earlier claims."""
    global _book
    _book = ClaimBook(quick=bool(quick))


def book() -> ClaimBook:
    """The current run's claims (for tests and for ``finish``)."""
    return _book


def _format(text: str, numbers: dict) -> str:
    """``text.format(**numbers)``, plus "(name = value, ...)" for the numbers the text does not name."""
    named = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    unknown = named - set(numbers)
    if unknown:
        raise KeyError(f"claim text names {sorted(unknown)} but only {sorted(numbers)} were given: pass them as "
                       f"keyword numbers, e.g. claim(ok, '... {{p:.3f}}', p=p)")
    formatted = text.format(**numbers)
    rest = [f"{k} = {_short(v)}" for k, v in numbers.items() if k not in named]
    return formatted + (f" ({', '.join(rest)})" if rest else "")


def _short(value) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def claim(condition, text: str, *, quick: bool = True, **numbers) -> bool:
    """Check one sentence about this run and print it with its verdict.

    condition: the sentence's truth, computed from the run (anything ``bool`` accepts, e.g. a NumPy bool).
    text: the sentence; ``{name:fmt}`` fields are filled from ``numbers``.
    quick: False if quick mode's sample sizes cannot support the sentence (then no verdict is given in quick mode).
    Returns the verdict (True also when not judged), so a chapter can branch on it.
    """
    formatted = _format(text, numbers)
    if _book.quick and not quick:
        verdict = NOT_JUDGED
    else:
        verdict = PASS if bool(condition) else FAIL
    _book.results.append((verdict, formatted))
    print(f"  claim [{verdict}] {formatted}", flush=True)
    return verdict != FAIL


def finish() -> None:
    """Print the tally; exit with status 1 after listing every failed claim (the chapter's last line)."""
    counts = {v: sum(1 for verdict, _ in _book.results if verdict == v) for v in (PASS, FAIL, NOT_JUDGED)}
    mode = "quick" if _book.quick else "full"
    print(f"claims ({mode} mode): {counts[PASS]} passed, {counts[FAIL]} failed, {counts[NOT_JUDGED]} not judged",
          flush=True)
    failed = _book.failures()
    if failed:
        print("these sentences of the chapter are not true of this run:", file=sys.stderr)
        for text in failed:
            print(f"  - {text}", file=sys.stderr)
        sys.exit(1)
