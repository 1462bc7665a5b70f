"""Preconditioned SGD: phase diagram, loss exponents and Adam against the idealized
preconditioner.

The experiment is :mod:`rfmodel.experiments.preconditioning`; this script runs it alone:
``python experiments/preconditioning.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import preconditioning

if __name__ == "__main__":
    preconditioning.main()
