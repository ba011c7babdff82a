"""The nightly CI matrix: its definition and the legs it runs."""
