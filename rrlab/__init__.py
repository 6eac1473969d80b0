"""The `rrlab` command root: wires the subcommands of rr, proxy, replayer and brokers."""
