"""Experiments that test the seed's claims and ideas, one sweep runner, and the report they write.

>>> from densenet.experiments import run_experiments
>>> run_experiments("claim1-params", "evidence", scale="cpu", seeds=3)  # doctest: +SKIP
"""

from densenet.experiments.report import EXPERIMENTS, list_experiments, run_experiments, write_readme
from densenet.experiments.scales import SCALES, Scale
from densenet.experiments.sweep import Arch, BenchSpec, RunSpec, Sweep

__all__ = ["EXPERIMENTS", "SCALES", "Arch", "BenchSpec", "RunSpec", "Scale", "Sweep", "list_experiments",
           "run_experiments", "write_readme"]
