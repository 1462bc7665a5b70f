"""Real networks: the schedule recommended by `rfmodel advise` against tuned cosine/WSD.

The experiment is :mod:`rfmodel.experiments.networks`; this script runs it alone:
``python experiments/networks.py [--quick] [--out DIR] [--results DIR] [--workers N]``.
"""

from rfmodel.experiments import networks

if __name__ == "__main__":
    networks.main()
