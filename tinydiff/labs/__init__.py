"""Open-ended labs: a measured number the grader checks, and a written part graded with the rubric of docs/course.md.

Each lab is one function with a solution region (an exercise like the others: ``python -m tinydiff.exercises list``).
The student writes the measurement; the tests check properties of the number it returns (a range, a sign, a trend)
rather than one exact value, because a good measurement can be made in more than one way.
"""
