"""cea — criteria and evidence classification for clinical text.

The library API is `cea.api`, re-exported here: `cea.train(...)`, `cea.evaluate(...)`,
`cea.predict(...)`, ... It is imported on first use, so `import cea` and `cea --help` stay fast.

Three of its functions share their names with subpackages (`cea.train`, `cea.evaluate`,
`cea.audit`). Those packages are callable: calling one calls the API function of that name
(`cea.train(config)` is `cea.api.train(config)`), whether or not the package has been imported,
while `import cea.train.loop` and `from cea.audit import artifacts` keep working.
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import inspect

from cea._version import __version__

__all__ = [
    "AuditReport",
    "BenchResult",
    "CeaError",
    "Comparison",
    "EvalReport",
    "Prediction",
    "Registration",
    "RunResult",
    "StudySummary",
    "__version__",
    "audit",
    "bench_augment",
    "bench_pipeline",
    "bench_step",
    "bench_train",
    "compare",
    "evaluate",
    "load_config",
    "predict",
    "register",
    "search",
    "study",
    "train",
]
_CALLABLE_PACKAGES = ("train", "evaluate", "audit")
_API = frozenset(__all__) - {"__version__", *_CALLABLE_PACKAGES}


class _CallablePackage(types.ModuleType):
    """A subpackage that shares its name with a function of `cea.api`: calling it calls that
    function; everything else is the package."""

    def _api_function(self) -> Any:
        from cea import api

        return getattr(api, self.__name__.rsplit(".", 1)[1])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._api_function()(*args, **kwargs)

    # what help() and pydoc show: the function first, then the package
    @property
    def __doc__(self) -> str:
        import inspect

        fn = self._api_function()
        package_doc = self.__dict__.get("__doc__") or ""
        return (
            f"{self.__name__}{inspect.signature(fn)}\n\n{inspect.getdoc(fn) or ''}\n\n"
            f"Calling `{self.__name__}(...)` calls `cea.api.{fn.__name__}`. The package: "
            f"{package_doc.strip()}"
        )

    @__doc__.setter
    def __doc__(self, value: str | None) -> None:
        self.__dict__["__doc__"] = value

    @property
    def __signature__(self) -> inspect.Signature:  # what inspect.signature and IDEs read
        import inspect

        return inspect.signature(self._api_function())


for _name in _CALLABLE_PACKAGES:  # their __init__ modules are one docstring each: cheap
    importlib.import_module(f"cea.{_name}").__class__ = _CallablePackage


def __getattr__(name: str) -> Any:
    if name in _API:
        from cea import api

        return getattr(api, name)
    raise AttributeError(f"module 'cea' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
