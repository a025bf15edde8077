"""Running a sweep on Ray Tune: driver.py connects to Ray and drives the plan's unfinished
nodes through the DAG searcher, trial.py is the Tune trainable (one trial = one stage
execution, run in a Ray worker), callbacks.py prints progress and records failures, and
status.py says how much of a sweep is planned and done."""
