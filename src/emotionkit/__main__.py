"""``python -m emotionkit``: the same as the ``emotionkit`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
