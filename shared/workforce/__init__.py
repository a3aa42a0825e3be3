"""Workforces: who answers relabel tasks. The port (`Workforce`, `RawAnswer`) is in
`shared.ports`, the answer rules every adapter applies in `base.py`; one adapter per module
(internal staff and simulated workers run anywhere; Mechanical Turk and Amazon A2I on AWS),
imported only by the composition root that chooses it, so a Lambda never loads what it does
not use."""
