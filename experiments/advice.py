"""The practitioner's benchmark: schedule advice from a pilot budget against practitioners'
schedules and schedules tuned at the target horizon, on real tasks.

The experiment is :mod:`rfmodel.experiments.advice`; this script runs it alone:
``python experiments/advice.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import advice

if __name__ == "__main__":
    advice.main()
