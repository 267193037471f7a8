"""One benchmark table (markdown + CSV), plots and an HTML page across methods x protocols x sets.

    python scripts/benchmark.py --methods dasr=options/test/dasr/cpu_bsds_x4_iso.yml \
        kdsr=options/test/kdsr/cpu_bsds_x4_iso.yml --protocols dasr_iso --sets Set5 --scale 4 --bicubic

A method is a test recipe, ``[LABEL=]RECIPE[@WEIGHTS]`` (see :mod:`blindsr.report.runner`); a set with a
protocol is the folder ``<--testsets>/<set>_<protocol>_x<scale>`` made by ``scripts/make_testsets.py``.
Writes ``<--out>/benchmark.md``, ``benchmark.csv``, ``plots/``, ``crops/`` and ``index.html`` (open it in
a browser); results are cached in ``<--out>/cache`` (or ``--cache``), so a rerun computes only what changed.
"""

from blindsr.report.cli import main

if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
