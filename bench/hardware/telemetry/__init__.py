"""Memory and energy meters for the timed window of a measurement.

The runner uses ``open_window``; ``HostPeakMeter`` is for other callers that
want a process's peak RSS over a stretch of code.  Nothing here imports a
framework, and pynvml is imported only when a GPU window is opened.
"""

from xpubench.hardware.telemetry.energy import METHODS, EnergyReading, energy_block
from xpubench.hardware.telemetry.gpu_state import decode_clock_event_reasons
from xpubench.hardware.telemetry.host_memory import HostPeak, HostPeakMeter
from xpubench.hardware.telemetry.window import DEVICE_KINDS, TelemetryWindow, open_window

__all__ = [
    "DEVICE_KINDS", "METHODS", "EnergyReading", "HostPeak", "HostPeakMeter", "TelemetryWindow",
    "decode_clock_event_reasons", "energy_block", "open_window",
]
