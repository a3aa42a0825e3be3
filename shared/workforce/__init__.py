"""Workforces: who answers relabel tasks. The port and the answer rules are in `base.py`; one
adapter per module (internal staff, simulated workers, Mechanical Turk, Amazon A2I), imported
only by the composition root that chooses it, so a Lambda never loads what it does not use."""

from shared.workforce.base import RawAnswer, Workforce, accept_votes

__all__ = ["RawAnswer", "Workforce", "accept_votes"]
