"""The error types of bad input. Their own module, below every package, so that the sweep
parser and the Optuna settings both raise SweepError without importing each other."""


class UserError(Exception):
    """Bad input: printed as one line, exit status 2, before any job starts."""


class SweepError(ValueError):
    """A sweep file problem: the message is one line naming the file, key and fix."""
