"""Reading finished sweeps: query, filter and format records (results.py), choose models by
val_acc only (selection.py: Pareto front, best per budget), plot accuracy against ReLU count
(plot.py) over published points (reference.py), and the table `senet run` ends with
(report.py). Plain functions of rows: no Ray, no training."""
