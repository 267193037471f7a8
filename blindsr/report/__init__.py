"""One benchmark across methods: the runner and its cache (:mod:`~blindsr.report.runner`), the markdown/CSV
tables (:mod:`~blindsr.report.tables`), the plots and crops (:mod:`~blindsr.report.plots`) and the static
HTML page (:mod:`~blindsr.report.html`). The command is ``python scripts/benchmark.py``."""
