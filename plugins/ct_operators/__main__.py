import sys

from ct_operators.cli import main

if __name__ == "__main__":
    sys.exit(main())
