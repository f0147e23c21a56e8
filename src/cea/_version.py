"""The version of cea (its own module, so the layers below the API can read it without importing
the root package, which re-exports the API)."""

__version__ = "0.1.0"
