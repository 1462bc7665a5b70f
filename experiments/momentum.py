"""Optimal momentum schedules: joint (η_t, β_t) control of heavy-ball SGD.

The experiment is :mod:`rfmodel.experiments.momentum`; this script runs it alone:
``python experiments/momentum.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import momentum

if __name__ == "__main__":
    momentum.main()
