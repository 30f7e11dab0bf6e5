"""loadgen: what each (R, W) setting of a dynamopy cluster costs and buys.

``python -m loadgen --help``. Modules: ``cli`` (flags, the run), ``run`` (cluster, drivers,
settings, faults), ``driver`` (one load process), ``keys`` (distributions), ``staleness``
(stale-read bookkeeping), ``histogram`` (HdrHistogram), ``wars`` (the PBS staleness model),
``nodemetrics`` (the model's inputs from the nodes), ``results``/``report``/``plots`` (output).
"""
