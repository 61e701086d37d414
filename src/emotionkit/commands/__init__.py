"""Subcommands of the ``emotionkit`` command line, one module each."""
