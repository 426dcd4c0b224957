"""One module per workflow stage; each exposes ``run(...)`` called by the CLI."""
