"""Composition for the Lambdas: ports and the workforce are built once per container, on first
use (not at import, so tests and cold starts that fail early stay cheap), from the environment
that infra sets."""

from __future__ import annotations

from functools import cache

from shared.backends import build_ports, build_workforce
from shared.env import Settings
from shared.ports import Ports, Workforce


@cache
def ports() -> Ports:
    return build_ports(Settings.from_env())


@cache
def workforce() -> Workforce:
    built = ports()
    return build_workforce(built.settings, built)


def reset() -> None:
    """Forget what was built (tests: a fresh container)."""
    ports.cache_clear()
    workforce.cache_clear()
