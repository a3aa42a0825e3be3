"""The few domain exceptions. Messages say what was wrong and what to do."""

from __future__ import annotations


class DressvisionError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(DressvisionError):
    """A setting is missing or malformed."""


class TaxonomyError(DressvisionError):
    """The taxonomy file is malformed."""


class UnknownLabelError(DressvisionError, ValueError):
    """A label (or facet) that the taxonomy does not know."""

    def __init__(self, facet: str, label: str, allowed: list[str] | tuple[str, ...]):
        self.facet, self.label, self.allowed = facet, label, list(allowed)
        super().__init__(f"unknown {facet} label {label!r}; allowed: {', '.join(self.allowed)}")


class InvalidImageError(DressvisionError):
    """A file that is not an image we accept. `reason` is short and meant for people."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class NotFoundError(DressvisionError, KeyError):
    """A record or object that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else "not found"


class ConflictError(DressvisionError):
    """An optimistic-lock conflict: the record changed since it was read. Re-read and retry."""


class StoreThrottledError(DressvisionError):
    """A store kept refusing writes for lack of capacity after retries; retry the job later."""


class UnsafeKeyError(DressvisionError, ValueError):
    """An object key that would escape the store's root or is otherwise not allowed."""


class JobSubmissionError(DressvisionError):
    """A job could not be submitted."""


class ObjectStoreError(DressvisionError):
    """An object store call failed for a reason other than a missing key (access, bucket,
    throttling after retries, a local file conflict). The message names the bucket and key."""


class CatalogFormatError(DressvisionError):
    """A catalog folder or labels.csv that cannot be imported as it is."""


class BudgetExceededError(DressvisionError):
    """Publishing one more paid task would pass the budget cap or the account's balance. Stop
    publishing; raise the cap (DRESSVISION_MTURK_BUDGET_USD) or fund the account to go on."""


class TaskClosedError(DressvisionError):
    """A relabel task that takes no more answers (decided, closed, or all answers in)."""


class UsageError(DressvisionError):
    """A command line that asks for something impossible (a value out of range, options that
    exclude each other). The CLI exits with status 2, as for argparse's own errors."""
