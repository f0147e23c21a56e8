"""System metrics (CPU, memory, GPU memory) sampled in a background thread while training."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

# NVML clock-throttle reasons that are no trouble: idle (0x1), application clocks (0x2),
# and the display clock setting (0x100)
THROTTLE_HARMLESS = 0x1 | 0x2 | 0x100
MEMORY_WARN_PERCENTAGE = 95.0


class SystemMetrics:
    """Samples CPU, memory and GPU memory every `interval` seconds in a daemon thread.

    Names follow MLflow's `system/...` convention so its UI groups them as system metrics.
    """

    def __init__(
        self,
        log: Callable[[dict[str, float], int], None],
        interval: float = 5.0,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._log = log
        self._warn = warn
        self._warned: set[tuple[int, str]] = set()
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
        out.update(self._nvml())
        return out

    def _nvml(self) -> dict[str, float]:
        """Utilization, memory and temperature per GPU through NVML (`nvidia-ml-py`, present on
        GPU hosts, absent on CPU ones), and a warning (once per device and kind) when a device
        throttles or nears its memory limit."""
        try:
            import pynvml  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return {}
        out: dict[str, float] = {}
        try:
            pynvml.nvmlInit()
        except Exception:  # no driver: a CPU host with the package installed
            return {}
        try:
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                util = pynvml.nvmlDeviceGetUtilizationRates(h)
                mem = pynvml.nvmlDeviceGetMemoryInfo(h)
                temp = pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)
                share = 100.0 * mem.used / max(mem.total, 1)
                out[f"system/gpu_{i}_utilization_percentage"] = float(util.gpu)
                out[f"system/gpu_{i}_memory_used_megabytes"] = round(mem.used / 2**20, 2)
                out[f"system/gpu_{i}_memory_percentage"] = round(share, 2)
                out[f"system/gpu_{i}_temperature_celsius"] = float(temp)
                reasons = pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(h)
                throttling = reasons & ~THROTTLE_HARMLESS
                out[f"system/gpu_{i}_throttling"] = float(bool(throttling))
                if throttling:
                    self._warn_once(i, "throttle", f"GPU {i} is throttling its clocks "
                                    f"(NVML reasons 0x{throttling:x}, {temp} °C)")  # fmt: skip
                if share >= MEMORY_WARN_PERCENTAGE:
                    self._warn_once(i, "memory", f"GPU {i} memory is {share:.0f} % full "
                                    "(lower train.batch_size or model.max_length)")  # fmt: skip
        finally:
            pynvml.nvmlShutdown()
        return out

    def _warn_once(self, device: int, kind: str, message: str) -> None:
        if self._warn is not None and (device, kind) not in self._warned:
            self._warned.add((device, kind))
            self._warn(message)

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
