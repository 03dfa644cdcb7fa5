"""The SM clock and the board's power now, read through NVML about every millisecond while a reference row is timed.

MOE_SWEEP_CLOCKS=1 makes grouped_gemm.py note them per row, as `sweep grouped_gemm` does for ours (GpuClockSampler), so
a compute-bound row can be compared at the clock it ran at: on random operands the power limit lowers the clock.
NVML (libnvidia-ml.so.1) is called through ctypes; pynvml need not be installed.
"""
import ctypes
import os
import threading
import time

NVML_CLOCK_SM = 1
NVML_FI_DEV_POWER_INSTANT = 186  # mW now; nvmlDeviceGetPowerUsage averages over about a second on Ampere and later


class _FieldValue(ctypes.Structure):
    # nvmlFieldValue_t: the value is a union of 8 bytes; the power field is an unsigned int
    _fields_ = [("field_id", ctypes.c_uint), ("scope_id", ctypes.c_uint), ("timestamp", ctypes.c_longlong),
                ("latency_us", ctypes.c_longlong), ("value_type", ctypes.c_int), ("status", ctypes.c_int),
                ("value", ctypes.c_ulonglong)]


def requested():
    value = os.environ.get("MOE_SWEEP_CLOCKS", "").strip()
    if value in ("", "0"):
        return False
    if value == "1":
        return True
    raise ValueError(f"MOE_SWEEP_CLOCKS='{value}': expected 1 (sample the SM clock and power through each row) or 0")


def _bus_id(device_index):
    import torch
    props = torch.cuda.get_device_properties(device_index)
    if not all(hasattr(props, a) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id")):
        return None
    return f"{props.pci_domain_id:04x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0".encode()


class ClockSampler:
    """Start with start(device_index); stop() returns the note's text ("SM 1410 MHz (min 1035), 655 W (max 700)")."""

    def __init__(self):
        self.reason = None
        self._nvml = None
        self._device = ctypes.c_void_p()
        try:
            self._nvml = ctypes.CDLL("libnvidia-ml.so.1")
        except OSError as error:
            self.reason = f"NVML not found ({error})"
            return
        status = self._nvml.nvmlInit_v2()
        if status != 0:
            self.reason, self._nvml = f"nvmlInit failed ({status})", None

    def start(self, device_index=0):
        self._samples, self._stop = [], False
        if self._nvml is None:
            return self
        bus = _bus_id(device_index)
        status = (self._nvml.nvmlDeviceGetHandleByPciBusId_v2(bus, ctypes.byref(self._device)) if bus is not None
                  else self._nvml.nvmlDeviceGetHandleByIndex_v2(device_index, ctypes.byref(self._device)))
        if status != 0:
            self.reason = f"NVML does not know the GPU ({status})"
            return self
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        clock, field = ctypes.c_uint(), _FieldValue()
        while not self._stop:
            if self._nvml.nvmlDeviceGetClockInfo(self._device, NVML_CLOCK_SM, ctypes.byref(clock)) == 0:
                field.field_id, field.status = NVML_FI_DEV_POWER_INSTANT, -1
                ok = self._nvml.nvmlDeviceGetFieldValues(self._device, 1, ctypes.byref(field)) == 0 and field.status == 0
                self._samples.append((clock.value, (field.value & 0xFFFFFFFF) / 1000.0 if ok else None))
            time.sleep(0.001)

    def stop(self):
        self._stop = True
        if getattr(self, "_thread", None) is not None:
            self._thread.join()
            self._thread = None
        if self.reason is not None:
            return f"clock: {self.reason}"
        return summary(self._samples)


def _median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def summary(samples):
    """[(MHz, W or None)] -> "SM <median> MHz (min <least>)[, <median> W (max <most>)]", as GpuClockReading prints it."""
    if not samples:
        return "clock: no samples"
    clocks = [c for c, _ in samples]
    watts = [w for _, w in samples if w is not None]
    text = f"SM {round(_median(clocks))} MHz (min {min(clocks)})"
    return text + (f", {_median(watts):.0f} W (max {max(watts):.0f})" if watts else "")


if __name__ == "__main__":
    assert summary([(1980, 650.0), (1410, None), (1500, 700.0)]) == "SM 1500 MHz (min 1410), 675 W (max 700)"
    assert summary([]) == "clock: no samples"
    print("gpu_clocks: summary checks passed")
