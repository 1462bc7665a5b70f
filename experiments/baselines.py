"""Final loss against T for the optimal schedule and every tuned baseline family.

The experiment is :mod:`rfmodel.experiments.baselines`; this script runs it alone:
``python experiments/baselines.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import baselines

if __name__ == "__main__":
    baselines.main()
