"""System metrics (CPU, memory, GPU memory) sampled in a background thread while training."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable


class SystemMetrics:
    """Samples CPU, memory and GPU memory every `interval` seconds in a daemon thread.

    Names follow MLflow's `system/...` convention so its UI groups them as system metrics.
    """

    def __init__(self, log: Callable[[dict[str, float], int], None], interval: float = 5.0) -> None:
        self._log = log
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cea-system-metrics", daemon=True)
        self.samples = 0

    def sample(self) -> dict[str, float]:
        import psutil

        vm = psutil.virtual_memory()
        proc = psutil.Process()
        out = {
            "system/cpu_utilization_percentage": float(psutil.cpu_percent(interval=None)),
            "system/system_memory_usage_megabytes": round(vm.used / 2**20, 2),
            "system/system_memory_usage_percentage": float(vm.percent),
            "system/process_memory_rss_megabytes": round(proc.memory_info().rss / 2**20, 2),
        }
        try:
            import torch

            if torch.cuda.is_available():
                for i in range(torch.cuda.device_count()):
                    out[f"system/gpu_{i}_memory_usage_megabytes"] = round(
                        torch.cuda.memory_allocated(i) / 2**20, 2
                    )
                    out[f"system/gpu_{i}_max_memory_usage_megabytes"] = round(
                        torch.cuda.max_memory_allocated(i) / 2**20, 2
                    )
        except ImportError:  # pragma: no cover
            pass
        return out

    def _emit(self) -> None:
        self._log(self.sample(), self.samples)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._emit()
            except Exception:  # noqa: S112 - a failed sample must never stop training
                continue

    def __enter__(self) -> SystemMetrics:
        import psutil

        psutil.cpu_percent(interval=None)  # prime the CPU counter
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
        with contextlib.suppress(Exception):
            self._emit()  # at least one sample, even for short runs
