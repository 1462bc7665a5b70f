"""Hard phase: per-step optimal control without smoothing vs K-piecewise and smoothed optima.

The experiment is :mod:`rfmodel.experiments.long_step_pattern`; this script runs it alone:
``python experiments/long_step_pattern.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import long_step_pattern

if __name__ == "__main__":
    long_step_pattern.main()
