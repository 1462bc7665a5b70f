"""Optimal schedules at long horizons (T = 10^5 … 10^7) by exact segment propagation.

The experiment is :mod:`rfmodel.experiments.long_horizons`; this script runs it alone:
``python experiments/long_horizons.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import long_horizons

if __name__ == "__main__":
    long_horizons.main()
