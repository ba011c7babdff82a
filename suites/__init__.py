"""Workloads, each written once per framework, side by side in one file.

Suite modules import no framework at import time: builders import lazily.
"""
