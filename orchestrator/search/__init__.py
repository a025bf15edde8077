"""Optuna search over distillation settings (and, in `optuna-pareto`, the budget): the study
journal in the workdir (studies.py), the source that turns sampled settings into stage-3 plan
nodes (source.py), and ASHA early stopping kept per budget (asha.py). The settings themselves
are parsed with the sweep file, in orchestrator.spec."""
