"""The version of emotionkit, in a module of its own so that submodules can read it without importing the package."""

#: The installed emotionkit version (also ``emotionkit.__version__``).
__version__ = "0.1.0"
