"""``python -m gateway``: the `gateway` command, for when the console script is not on PATH
(the one module of the web tier's package that reaches the command line; nothing imports it)."""

import sys

from cli.main import main

if __name__ == "__main__":
    sys.exit(main())
