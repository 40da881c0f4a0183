"""The older name of :mod:`tinydiff.bench.nfe`: ``python -m tinydiff.bench_nfe ...`` runs the same command."""

from tinydiff.bench.nfe import format_nfe_table, main, mode_statistics, nfe_table

__all__ = ["nfe_table", "format_nfe_table", "mode_statistics", "main"]

if __name__ == "__main__":
    main()
