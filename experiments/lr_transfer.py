"""Learning-rate transfer across horizons: best base rate against T, and horizon transfer of
the optimal schedule against re-solving.

The experiment is :mod:`rfmodel.experiments.lr_transfer`; this script runs it alone:
``python experiments/lr_transfer.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import lr_transfer

if __name__ == "__main__":
    lr_transfer.main()
