"""``python -m tinydiff.exercises {list, make-student, grade}``: the lecturer's tools for homework made from tinydiff.

    python -m tinydiff.exercises list                               every exercise: id, file, function, chapter, points
    python -m tinydiff.exercises make-student --out ../hw1 [--only ex2_1,ex4_3]
    python -m tinydiff.exercises grade [DIR] [--only ...] [--tests DIR/tests] [--json results.json]
    python -m tinydiff.exercises gradescope --out autograder.zip [--only ...]   a Gradescope autograder bundle
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinydiff.exercises.markers import MarkerError, project_root, scan_project


def _ids(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def cmd_list(args) -> int:
    root = Path(args.root) if args.root else project_root()
    exercises, hidden = scan_project(root)
    rows = [("id", "title", "file", "function", "chapter", "points")]
    for ex in exercises.values():
        extra = f" (+{len(ex.regions) - 1} regions)" if len(ex.regions) > 1 else ""
        rows.append((ex.id, ex.title, f"{ex.file}:{ex.regions[0].begin}{extra}", ex.function, str(ex.chapter),
                     f"{ex.points:g}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    total = sum(ex.points for ex in exercises.values())
    print(f"\n{len(exercises)} exercises, {total:g} points; {len(hidden)} hidden-test blocks")
    return 0


def cmd_make_student(args) -> int:
    from tinydiff.exercises.student import make_student

    root = Path(args.root) if args.root else project_root()
    done = make_student(Path(args.out), _ids(args.only), root)
    print(f"wrote the student copy to {args.out}: {len(done)} exercises blanked ({', '.join(done)}), hidden tests removed")
    if args.notebooks:
        from tinydiff.exercises.notebooks import write_notebooks

        written = write_notebooks(Path(args.out))
        print(f"wrote {len(written)} chapter notebooks to {Path(args.out) / 'chapters'} (open them in Jupyter or Colab)")
    print(f"students run one exercise's tests with:  cd {args.out} && pytest -m {next(iter(done))}")
    return 0


def cmd_grade(args) -> int:
    from tinydiff.exercises.grade import format_table, grade, gradescope_json

    target = Path(args.dir) if args.dir else Path.cwd()
    results = grade(target, _ids(args.only), Path(args.tests) if args.tests else None)
    print(format_table(results))
    if args.verbose:
        for r in results:
            for m in r.messages:
                print(f"\n[{r.exercise.id}] {m}")
    if args.json:
        Path(args.json).write_text(json.dumps(gradescope_json(results), indent=2), encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


def cmd_gradescope(args) -> int:
    from tinydiff.exercises.gradescope import build_bundle

    ids = build_bundle(Path(args.out), _ids(args.only), Path(args.root) if args.root else None)
    print(f"wrote {args.out}: Gradescope autograder for {len(ids)} exercises ({', '.join(ids)})")
    print("upload it as the assignment's autograder (Configure Autograder > Zip file upload); students submit their "
          "project folder (or just the files they changed)")
    return 0


def cmd_autograde(args) -> int:
    from tinydiff.exercises.gradescope import autograde

    report = autograde(Path(args.source), Path(args.submission), Path(args.work), Path(args.results), _ids(args.only))
    print(report["output"])
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tinydiff.exercises", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    s = sub.add_parser("list", help="show every exercise with its id, file, function, chapter and points")
    s.add_argument("--root", help="project folder (default: this source tree)")
    s.set_defaults(run=cmd_list)
    s = sub.add_parser("make-student", help="write the student copy: solutions become stubs, hidden tests go")
    s.add_argument("--out", required=True, help="new folder for the student copy (must not exist or be empty)")
    s.add_argument("--only", help="comma-separated exercise ids to blank (default: all)")
    s.add_argument("--root", help="project folder to copy (default: this source tree)")
    s.add_argument("--notebooks", action="store_true", help="also write each chapter as a Jupyter notebook "
                                                             "(chapters/NN_topic.ipynb, from its # %%%% cells)")
    s.set_defaults(run=cmd_make_student)
    s = sub.add_parser("grade", help="run the exercise tests of a project copy and print the score table")
    s.add_argument("dir", nargs="?", help="project copy to grade (default: the current folder)")
    s.add_argument("--only", help="comma-separated exercise ids to grade (default: all)")
    s.add_argument("--tests", help="tests folder to run instead of DIR/tests (e.g. the instructor's, with hidden tests)")
    s.add_argument("--json", help="also write Gradescope's results.json here")
    s.add_argument("-v", "--verbose", action="store_true", help="print every failing test's message")
    s.set_defaults(run=cmd_grade)
    s = sub.add_parser("gradescope", help="write a Gradescope autograder zip (setup.sh, run_autograder, the grader)")
    s.add_argument("--out", required=True, help="the zip to write, e.g. autograder.zip")
    s.add_argument("--only", help="comma-separated exercise ids to grade (default: all)")
    s.add_argument("--root", help="project folder (default: this source tree)")
    s.set_defaults(run=cmd_gradescope)
    s = sub.add_parser("autograde", help="what run_autograder calls: splice a submission's regions into the "
                                         "instructor's tree, grade, write results.json")
    s.add_argument("--source", required=True, help="the instructor's tree (the unpacked bundle)")
    s.add_argument("--submission", required=True, help="the student's files")
    s.add_argument("--work", required=True, help="a scratch folder for the spliced tree (replaced)")
    s.add_argument("--results", required=True, help="where to write results.json")
    s.add_argument("--only", required=True, help="comma-separated exercise ids")
    s.set_defaults(run=cmd_autograde)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (MarkerError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
