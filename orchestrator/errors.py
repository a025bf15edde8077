"""The one error type the CLI turns into a single line and exit status 2."""


class UserError(Exception):
    """Bad input: printed as one line, exit status 2, before any job starts."""
