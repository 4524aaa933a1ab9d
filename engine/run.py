"""``python -m engine.run``: the command line (see ``engine.cli``)."""
import sys

from engine.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
