"""Test doubles for hardware interfaces (NVML, powercap sysfs)."""
