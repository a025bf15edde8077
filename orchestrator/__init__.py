"""senet-sweep's orchestrator: SENet's three stages as a sweep on Ray Tune, Optuna and Slurm.

The sub-packages read as the pipeline, each importing only those before it: spec (the sweep
file) -> plan (stage executions and their dependencies) -> records (Parquet rows) -> search
(Optuna) -> run (Ray Tune) -> analysis (results, plots) -> slurm (one job per sweep) -> cli
(`senet`). errors.py holds the error types every layer raises.
"""
