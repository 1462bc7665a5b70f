"""Phase diagram: measured peak-rate and optimal-loss exponents over a grid of (a, b).

The experiment is :mod:`rfmodel.experiments.phase_diagram`; this script runs it alone:
``python experiments/phase_diagram.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import phase_diagram

if __name__ == "__main__":
    phase_diagram.main()
