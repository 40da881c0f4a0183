"""``python -m tinydiff`` runs the command-line interface (see :mod:`tinydiff.cli`).

One trap is caught here, before anything else is imported: run from the folder that CONTAINS a clone named
``tinydiff``, Python finds that folder first (the current directory leads ``sys.path`` under ``-m``) and imports it as
an empty namespace package, so ``tinydiff.__version__`` and everything else is missing. The ``tinydiff`` console
script does not put the current directory on the path, so it works from anywhere.
"""

import sys

import tinydiff

if getattr(tinydiff, "__file__", None) is None:       # a namespace package: a folder without __init__.py
    shadow = ", ".join(str(p) for p in tinydiff.__path__)
    sys.exit(f"python -m tinydiff: the folder {shadow} (a clone of tinydiff?) in the current directory hides the "
             "installed package, because Python looks in the current directory first. Run the same command from "
             "inside the clone (cd tinydiff), or use the console script instead: `tinydiff demo`, `tinydiff --help`.")

from tinydiff.cli import main  # noqa: E402  (after the check above)

if __name__ == "__main__":
    raise SystemExit(main())
