"""`senet`, the command line: argument parsing and printing only, every command a thin call
into the library packages. main.py builds the parser and turns a UserError into one line and
exit status 2; one module per command group. No module outside this package imports it."""
