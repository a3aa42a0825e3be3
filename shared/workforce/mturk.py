"""Amazon Mechanical Turk: one HIT per relabel task, answered on the crowd-image-classifier page.

AWS announced Mechanical Turk's permanent closure for 2026-09-30. It stays here as an adapter
(the original request); choose `a2i` (a private or vendor workforce) or `internal` (staff)
otherwise.

- Sandbox by default: real money only with `production=True` (DRESSVISION_MTURK_PRODUCTION).
  A client pointing elsewhere than the flag says is refused.
- Idempotent publishing: a task that has an external id is never published again, and every
  HIT carries `UniqueRequestToken = sha256(task id)`. A retry within MTurk's 24 hours gets a
  "HitAlreadyExists" RequestError; we then return the HIT its message names or, if it names
  none, the HIT whose RequesterAnnotation is the task id (ListHITs). Extra assignments carry a
  token of (task id, new total) the same way.
- Budget: before paying for anything, rewards plus MTurk's fee (20%, at least $0.01 per
  assignment; 10 or more assignments per HIT cost 20% more, so we refuse them) must fit in both
  the remaining budget and the account's available balance, else `BudgetExceededError`. With a
  `ledger` (the TaskStore: a conditional write in the Tasks table or SQLite) the spend is
  reserved in shared, current state before each call, so the review and collect Lambdas (or two
  CLI runs) can never pass the cap together; a refused or failed call gives it back.
- Answers are untrusted: parsed from the QuestionFormAnswers XML without DTDs or entities,
  then validated against the task's labels (`accept_votes`). Assignments are approved, never
  rejected automatically: disagreeing is not cheating, and aggregation down-weights spammers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol
from xml.etree import ElementTree

from botocore.exceptions import ClientError

from shared.errors import BudgetExceededError, ConfigurationError, ConflictError
from shared.ports import RawAnswer, Workforce
from shared.tasks import RelabelTask, Vote
from shared.workforce.base import accept_votes, check_extra
from shared.workforce.template import answer_label, html_question, mturk_html

logger = logging.getLogger(__name__)

REGION = "us-east-1"  # MTurk's only region
SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
PRODUCTION_ENDPOINT = "https://mturk-requester.us-east-1.amazonaws.com"
MAX_ASSIGNMENTS_PER_HIT = 9  # from 10 assignments MTurk's fee doubles
FEE_RATE = Decimal("0.20")
MIN_FEE_USD = Decimal("0.01")
ANSWER_NS = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/"
    "QuestionFormAnswers.xsd"
)
ANSWER_FIELD = "taskAnswers"  # crowd-form posts its JSON answers under this name
MAX_ANSWER_BYTES = 65_536
NOTIFICATION_EVENTS = ("AssignmentSubmitted", "HITReviewable")
HIT_ALREADY_EXISTS = "AWS.MechanicalTurk.HitAlreadyExists"
EXPIRE_NOW = datetime(2015, 1, 1, tzinfo=UTC)  # a past time expires a HIT at once
PERCENT_APPROVED_QUALIFICATION = "000000000000000000L0"  # MTurk's system qualification id
# Ours: given to workers whose estimated accuracy is below DRESSVISION_MIN_WORKER_ACCURACY; the
# HIT type then requires that a worker does NOT have it.
LOW_QUALITY_QUALIFICATION_NAME = "dressvision low estimated accuracy"

_HIT_ID = re.compile(r"\b[A-Z0-9]{30}\b")  # MTurk HIT ids: 30 upper-case letters and digits
_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(frozen=True)
class HitTypeSettings:
    """What workers see in the HIT list, and the rules of the HIT type."""

    reward_usd: Decimal = Decimal("0.05")
    title: str = "Choose the right label for a dress photo"
    description: str = (
        "Look at one dress photo and pick its neckline, sleeve, silhouette or occasion "
        "from a short list."
    )
    keywords: str = "image, classification, fashion, dress, labeling"
    assignment_duration_s: int = 600
    auto_approval_delay_s: int = 3 * 24 * 3600
    hit_lifetime_s: int = 7 * 24 * 3600
    frame_height: int = 0
    qualification_requirements: tuple[Mapping[str, Any], ...] = field(
        default_factory=lambda: (
            {
                "QualificationTypeId": PERCENT_APPROVED_QUALIFICATION,
                "Comparator": "GreaterThanOrEqualTo",
                "IntegerValues": [95],
            },
        )
    )


class SpendLedger(Protocol):
    """Shared spend (`TaskStore.add_spend`)."""

    def add_spend(
        self, amount: Decimal, *, cap: Decimal, initial: Callable[[], Decimal]
    ) -> tuple[bool, Decimal]: ...


def assignment_cost(reward_usd: Decimal, assignments: int) -> Decimal:
    """What `assignments` answers cost: reward plus MTurk's fee (20%, at least $0.01)."""
    return assignments * (reward_usd + max(reward_usd * FEE_RATE, MIN_FEE_USD))


def committed_spend(tasks: Iterable[RelabelTask], reward_usd: Decimal) -> Decimal:
    """What the published MTurk tasks among `tasks` cost (for `MTurkWorkforce(spent_usd=...)`)."""
    return sum(
        (
            assignment_cost(reward_usd, t.max_assignments)
            for t in tasks
            if t.provider == "mturk" and t.external_id
        ),
        Decimal(0),
    )


def request_token(*parts: object) -> str:
    """A UniqueRequestToken (64 hex characters, MTurk's maximum) derived from `parts`."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def parse_answer(answer_xml: str) -> object:
    """The category in an assignment's QuestionFormAnswers XML. ValueError (with the reason)
    for anything but one `taskAnswers` FreeText holding `[{"label": {"label": ...}}]`."""
    if len(answer_xml.encode()) > MAX_ANSWER_BYTES:
        raise ValueError("answer XML is too long")
    if _DTD.search(answer_xml):  # no DTD, no entity expansion (billion laughs, external files)
        raise ValueError("answer XML declares a DOCTYPE or ENTITY")
    try:
        root = ElementTree.fromstring(answer_xml)
    except ElementTree.ParseError as exc:
        raise ValueError(f"answer is not XML: {exc}") from None
    ns = {"a": ANSWER_NS}
    if root.tag != f"{{{ANSWER_NS}}}QuestionFormAnswers":
        raise ValueError(f"unexpected answer root {root.tag!r:.100}")
    texts = [
        answer.findtext("a:FreeText", namespaces=ns)
        for answer in root.findall("a:Answer", ns)
        if answer.findtext("a:QuestionIdentifier", namespaces=ns) == ANSWER_FIELD
    ]
    if len(texts) != 1 or texts[0] is None:
        raise ValueError(f"expected one {ANSWER_FIELD} FreeText answer, found {len(texts)}")
    try:
        answers = json.loads(texts[0])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{ANSWER_FIELD} is not JSON: {exc}") from None
    except RecursionError:  # "[[[[...]]]]" under the size cap
        raise ValueError(f"{ANSWER_FIELD} is nested too deeply to be an answer") from None
    if not isinstance(answers, list) or len(answers) != 1:
        raise ValueError(f"{ANSWER_FIELD} must be a list of one answer object")
    return answer_label(answers[0])


class MTurkWorkforce(Workforce):
    """Workers on Amazon Mechanical Turk (sandbox unless `production`)."""

    name = "mturk"

    def __init__(
        self,
        *,
        budget_usd: Decimal,
        spent_usd: Callable[[], Decimal] | None = None,
        ledger: SpendLedger | None = None,
        hit_type: HitTypeSettings | None = None,
        production: bool = False,
        notification_queue_url: str | None = None,
        client: Any = None,
        keep_out_low_quality: bool = False,
    ):
        """`spent_usd` tells what was committed before (e.g. `committed_spend` over the task
        store). With a `ledger` (production: the TaskStore) every spend is checked against and
        reserved in that shared ledger, which starts at `spent_usd()`; without one (tests, a
        single process) `spent_usd` is read once and each publish adds its cost."""
        self.budget_usd = Decimal(budget_usd)
        self.hit_type = hit_type or HitTypeSettings()
        self.production = production
        self.notification_queue_url = notification_queue_url or None
        self._spent_source = spent_usd or (lambda: Decimal(0))
        self._spent: Decimal | None = None
        self._ledger = ledger
        self._client = client
        self._hit_type_id: str | None = None
        self.keep_out_low_quality = keep_out_low_quality
        self._low_quality_id: str | None = None

    @property
    def client(self) -> Any:
        """The MTurk client, created on first use, on the sandbox unless `production`."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "mturk",
                region_name=REGION,
                endpoint_url=PRODUCTION_ENDPOINT if self.production else SANDBOX_ENDPOINT,
                config=Config(retries={"mode": "standard"}),
            )
        expected = PRODUCTION_ENDPOINT if self.production else SANDBOX_ENDPOINT
        if self._client.meta.endpoint_url != expected:
            raise ConfigurationError(
                f"the MTurk client points at {self._client.meta.endpoint_url}, expected "
                f"{expected}: real money needs DRESSVISION_MTURK_PRODUCTION=true and a client "
                "on the production endpoint"
            )
        return self._client

    @property
    def hit_type_id(self) -> str:
        """The HIT type, registered once per process (MTurk returns the same id for the same
        settings); notifications are configured on it when a queue is set."""
        if self._hit_type_id is None:
            settings = self.hit_type
            request: dict[str, Any] = {
                "Title": settings.title,
                "Description": settings.description,
                "Reward": str(settings.reward_usd.quantize(Decimal("0.01"))),
                "AssignmentDurationInSeconds": settings.assignment_duration_s,
                "AutoApprovalDelayInSeconds": settings.auto_approval_delay_s,
                "Keywords": settings.keywords,
            }
            requirements = [dict(q) for q in settings.qualification_requirements]
            if self.keep_out_low_quality:
                requirements.append(self.low_quality_requirement())
            if requirements:
                request["QualificationRequirements"] = requirements
            self._hit_type_id = self.client.create_hit_type(**request)["HITTypeId"]
            if self.notification_queue_url:
                self.configure_notifications(self.notification_queue_url)
        return self._hit_type_id

    def configure_notifications(self, queue_url: str) -> None:
        """Send AssignmentSubmitted and HITReviewable events of our HIT type to an SQS queue
        (its policy must let mturk-requester.amazonaws.com send messages)."""
        self.client.update_notification_settings(
            HITTypeId=self.hit_type_id,
            Notification={
                "Destination": queue_url,  # MTurk wants the queue URL, not its ARN
                "Transport": "SQS",
                "Version": "2014-08-15",
                "EventTypes": list(NOTIFICATION_EVENTS),
            },
            Active=True,
        )

    def publish(self, task: RelabelTask, image_url: str) -> str | None:
        """Create the task's HIT (once) and return its id. `image_url` must stay readable for
        the HIT's lifetime (a presigned URL with a long enough expiry)."""
        if task.external_id:
            return task.external_id  # published before: the 24-hour token may have expired
        _check_cap(task.max_assignments)
        cost = assignment_cost(self.hit_type.reward_usd, task.max_assignments)
        question = html_question(mturk_html(task, image_url), self.hit_type.frame_height)
        self._check_budget(cost, task)
        try:
            response = self.client.create_hit_with_hit_type(
                HITTypeId=self.hit_type_id,
                MaxAssignments=task.max_assignments,
                LifetimeInSeconds=self.hit_type.hit_lifetime_s,
                Question=question,
                RequesterAnnotation=_annotation(task),
                UniqueRequestToken=request_token("hit", task.task_id),
            )
        except ClientError as exc:
            self._give_back(cost)  # nothing new was bought
            if not _token_reused(exc):
                raise
            hit_id = self._existing_hit(task, exc)
            logger.info("task %s was already published as HIT %s", task.task_id, hit_id)
            return hit_id
        except BaseException:
            self._give_back(cost)
            raise
        self._spent = self._spent_so_far() + cost
        return response["HIT"]["HITId"]

    def fetch_votes(self, task: RelabelTask) -> list[Vote]:
        """Submitted and approved assignments' answers, validated."""
        if not task.external_id:
            return []
        answers = []
        for assignment in self._assignments(task.external_id, ["Submitted", "Approved"]):
            worker = assignment.get("WorkerId", "")
            try:
                label = parse_answer(assignment.get("Answer", ""))
            except ValueError as exc:
                logger.warning(
                    "task %s: dropped answer %s of worker %s: %s",
                    task.task_id,
                    assignment["AssignmentId"],
                    worker,
                    exc,
                )
                continue
            at = assignment.get("SubmitTime") or datetime.now(UTC)
            answers.append(RawAnswer(worker, assignment["AssignmentId"], label, at))
        return accept_votes(task, answers)

    def request_more(self, task: RelabelTask, extra: int) -> None:
        """Add `extra` assignments to the task's HIT (within the cap and the budget)."""
        check_extra(extra)
        if not task.external_id:
            raise ValueError(f"task {task.task_id} has no HIT yet: publish it first")
        total = task.max_assignments + extra
        _check_cap(total)
        cost = assignment_cost(self.hit_type.reward_usd, extra)
        self._check_budget(cost, task)
        try:
            self.client.create_additional_assignments_for_hit(
                HITId=task.external_id,
                NumberOfAdditionalAssignments=extra,
                UniqueRequestToken=request_token("more", task.task_id, total),
            )
        except ClientError as exc:
            self._give_back(cost)
            if not _token_reused(exc):
                raise
            logger.info("task %s: %d more assignments were already requested", task.task_id, extra)
            return
        self._spent = self._spent_so_far() + cost

    def finish(self, task: RelabelTask) -> None:
        """Approve every submitted assignment and expire the HIT so nobody else takes it."""
        if not task.external_id:
            return
        for assignment in self._assignments(task.external_id, ["Submitted"]):
            self.client.approve_assignment(AssignmentId=assignment["AssignmentId"])
        self.client.update_expiration_for_hit(HITId=task.external_id, ExpireAt=EXPIRE_NOW)

    # --- Keeping low-quality workers out (DRESSVISION_MIN_WORKER_ACCURACY) ---------------------

    @property
    def low_quality_qualification_id(self) -> str:
        """Our qualification type for excluded workers: found by name, created the first time."""
        if self._low_quality_id is None:
            for page in self.client.get_paginator("list_qualification_types").paginate(
                Query=LOW_QUALITY_QUALIFICATION_NAME,
                MustBeRequestable=False,
                MustBeOwnedByCaller=True,
            ):
                for qualification in page.get("QualificationTypes", []):
                    if qualification.get("Name") == LOW_QUALITY_QUALIFICATION_NAME:
                        self._low_quality_id = qualification["QualificationTypeId"]
                        return self._low_quality_id
            created = self.client.create_qualification_type(
                Name=LOW_QUALITY_QUALIFICATION_NAME,
                Description=(
                    "Given by dressvision's requester to workers whose answers were estimated "
                    "too often wrong; its HITs are not offered to them."
                ),
                QualificationTypeStatus="Active",
            )
            self._low_quality_id = created["QualificationType"]["QualificationTypeId"]
        return self._low_quality_id

    def low_quality_requirement(self) -> dict[str, Any]:
        """The HIT requirement that keeps the excluded workers out."""
        return {
            "QualificationTypeId": self.low_quality_qualification_id,
            "Comparator": "DoesNotExist",
            "ActionsGuarded": "DiscoverPreviewAndAccept",
        }

    def exclude_workers(self, worker_ids) -> bool:
        """Give each worker the low-quality qualification (score 0): new HITs of our HIT type
        (which requires its absence) are no longer offered to them."""
        if not self.keep_out_low_quality:
            return False
        for worker_id in worker_ids:
            self.client.associate_qualification_with_worker(
                QualificationTypeId=self.low_quality_qualification_id,
                WorkerId=worker_id,
                IntegerValue=0,
                SendNotification=False,
            )
        return True

    def task_price_usd(self, assignments: int) -> Decimal:
        """Rewards plus MTurk's fee for `assignments` answers."""
        return assignment_cost(self.hit_type.reward_usd, assignments)

    def budget_left_usd(self) -> Decimal:
        """What is left of the budget cap (`review --publish --json` reports it)."""
        return self.budget_usd - self._spent_so_far()

    def _assignments(self, hit_id: str, statuses: list[str]) -> Iterator[dict]:
        paginator = self.client.get_paginator("list_assignments_for_hit")
        for page in paginator.paginate(
            HITId=hit_id, AssignmentStatuses=statuses, PaginationConfig={"PageSize": 100}
        ):
            yield from page.get("Assignments", [])

    def _spent_so_far(self) -> Decimal:
        if self._spent is None:
            self._spent = Decimal(self._spent_source())
        return self._spent

    def _check_budget(self, cost: Decimal, task: RelabelTask) -> None:
        """Reserve `cost` within the budget (in the shared ledger when there is one), then
        check the account balance; the caller gives the reservation back if the call fails."""
        if self._ledger is not None:
            added, total = self._ledger.add_spend(
                cost, cap=self.budget_usd, initial=self._spent_source
            )
            remaining = self.budget_usd - total
        else:
            remaining = self.budget_usd - self._spent_so_far()
            added = cost <= remaining
        if not added:
            raise BudgetExceededError(
                f"task {task.task_id} would cost {_usd(cost)}, over the {_usd(remaining)} left "
                f"of the {_usd(self.budget_usd)} budget; raise DRESSVISION_MTURK_BUDGET_USD to "
                "go on"
            )
        try:
            balance = Decimal(self.client.get_account_balance()["AvailableBalance"])
        except BaseException:
            self._give_back(cost)
            raise
        if cost > balance:
            self._give_back(cost)
            raise BudgetExceededError(
                f"task {task.task_id} would cost {_usd(cost)}, over the account's available "
                f"balance {_usd(balance)}; fund the MTurk requester account to go on"
            )

    def _give_back(self, cost: Decimal) -> None:
        if self._ledger is not None:
            self._ledger.add_spend(-cost, cap=self.budget_usd, initial=self._spent_source)

    def _existing_hit(self, task: RelabelTask, exc: ClientError) -> str:
        """The HIT an earlier call with the same token created."""
        named = _HIT_ID.search(exc.response.get("Error", {}).get("Message", ""))
        if named:
            return named.group(0)
        annotation = _annotation(task)
        for page in self.client.get_paginator("list_hits").paginate(
            PaginationConfig={"PageSize": 100}
        ):
            for hit in page.get("HITs", []):
                if hit.get("RequesterAnnotation") == annotation:
                    return hit["HITId"]
        raise ConflictError(
            f"MTurk says task {task.task_id} was already published but neither names nor lists "
            "its HIT; find it on the requester site (annotation = task id) and store its id as "
            "the task's external_id"
        ) from exc


def _check_cap(assignments: int) -> None:
    if assignments > MAX_ASSIGNMENTS_PER_HIT:
        raise ValueError(
            f"{assignments} assignments per HIT: MTurk's fee rises from 20% to 40% at 10, so "
            f"at most {MAX_ASSIGNMENTS_PER_HIT} are allowed"
        )


def _usd(amount: Decimal) -> str:
    return f"${amount.quantize(Decimal('0.01'))}"


def _annotation(task: RelabelTask) -> str:
    return task.task_id[:255]  # RequesterAnnotation's limit


def _token_reused(exc: ClientError) -> bool:
    """MTurk's answer to a UniqueRequestToken it has seen in the last 24 hours."""
    error = exc.response.get("Error", {})
    if error.get("Code") not in ("RequestError", "ServiceFault"):
        return False
    turk_code = exc.response.get("TurkErrorCode") or error.get("TurkErrorCode") or ""
    message = error.get("Message", "")
    return (
        turk_code == HIT_ALREADY_EXISTS
        or "HitAlreadyExists" in message
        or "UniqueRequestToken" in message
    )
