"""Compute-optimal scaling: N and T at fixed compute under optimal, constant and tuned schedules.

The experiment is :mod:`rfmodel.experiments.compute_optimal`; this script runs it alone:
``python experiments/compute_optimal.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import compute_optimal

if __name__ == "__main__":
    compute_optimal.main()
