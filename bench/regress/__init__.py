"""Deciding regressions: statistics, compare, the gate policy (one place) and the nightly gate."""
