"""Optimal schedules over horizons spanning > 2 decades, in one easy and one hard setting.

The experiment is :mod:`rfmodel.experiments.optimal_schedules`; this script runs it alone:
``python experiments/optimal_schedules.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import optimal_schedules

if __name__ == "__main__":
    optimal_schedules.main()
