"""Workloads, cases and the registry of suites."""
