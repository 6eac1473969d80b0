"""Architecture contracts (`rrlab arch check`): the manifest under `arch/` says which contracts are
enabled and which indexes they read; `rrlab.arch.check.run_check` validates them and compares the
locks.

Only reads files under a project root (never imports proxy, replayer, brokers or the worker), so
it can check a temporary copy of the repository as well as this checkout. Nothing is imported
here: `rrlab --help` must not need jsonschema or import-linter (the `arch` extra).
"""
