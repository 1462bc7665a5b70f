"""Data-quality curricula under rate schedules and averaging.

The experiment is :mod:`rfmodel.experiments.curriculum`; this script runs it alone:
``python experiments/curriculum.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import curriculum

if __name__ == "__main__":
    curriculum.main()
