"""Measuring: the timing loop, its statistics, the one function that measures a step, and the record it yields."""
