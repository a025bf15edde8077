"""The sweep file: its schema, parsing and validation. TOML in, a frozen `Sweep` out (stage
configs, budgets resolved to ReLU counts, resources, Optuna settings), or one `SweepError`
line naming the file, the key and the problem, before anything starts. Nothing here runs,
plans or samples anything."""
