"""Optimal batch-size schedules: joint (η_t, m_t) control under a sample budget.

The experiment is :mod:`rfmodel.experiments.batch_schedules`; this script runs it alone:
``python experiments/batch_schedules.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import batch_schedules

if __name__ == "__main__":
    batch_schedules.main()
