"""Homework from tinydiff: solution regions in the library, a student-copy generator, and grading.

The library is the solution. Marked regions (``### BEGIN SOLUTION exN_M: ...`` / ``### END SOLUTION``) become stubs in
the student copy, and the tests marked ``@pytest.mark.exN_M`` grade them with messages that teach. See
docs/exercises.md; the command line is ``python -m tinydiff.exercises {list, make-student, grade}``.
"""

from tinydiff.exercises.markers import Exercise, MarkerError, scan_project

__all__ = ["Exercise", "MarkerError", "scan_project"]
