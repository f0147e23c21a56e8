"""cea — criteria and evidence classification for clinical text."""

__version__ = "0.1.0"
