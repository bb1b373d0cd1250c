"""`python -m edgeferry ...`: the same command line as the installed `edgeferry`."""

import sys

from edgeferry.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
