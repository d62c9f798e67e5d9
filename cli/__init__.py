"""The ``gateway`` command line (``cli.main``): thin commands over the service and, for the
sandbox commands (``demo``, ``simulate``), the sandbox tooling."""
