"""The machine: fingerprint, ISA peak, probe and ceilings, spec sheet, roofline, telemetry."""
