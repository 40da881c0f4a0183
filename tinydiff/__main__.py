"""``python -m tinydiff`` runs the command-line interface (see :mod:`tinydiff.cli`)."""

from tinydiff.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
