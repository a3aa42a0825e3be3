"""The JobRunner adapters: what AWS Batch receives (moto), and the local runner's processes,
environment contract and "Batch Job State Change" events."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from shared.aws.batch import BatchJobRunner, job_name_for
from shared.embedded.jobs import LocalJobRunner
from shared.env import (
    BATCH_ARRAY_INDEX,
    BATCH_JOB_ID,
    HOME,
    INFER_SHARD_SIZE,
    JOB_QUEUE,
    Settings,
)
from shared.errors import JobSubmissionError, NotFoundError
from shared.messages import BatchJobStateChange, JobRequest

QUEUE = "dressvision-gpu-test"


# -- AWS Batch (moto) -----------------------------------------------------------------------


@pytest.fixture
def batch(aws_env: None):
    """A Batch job queue and two job definitions (infer, train); yields the boto3 client."""
    with mock_aws(config={"batch": {"use_docker": False}}):
        role = boto3.client("iam").create_role(
            RoleName="dressvision-batch-service", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        client = boto3.client("batch")
        env = client.create_compute_environment(
            computeEnvironmentName="dressvision-ce",
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=role,
        )
        client.create_job_queue(
            jobQueueName=QUEUE,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[
                {"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}
            ],
        )
        for job in ("infer", "train"):
            client.register_job_definition(
                jobDefinitionName=f"dressvision-{job}",
                type="container",
                containerProperties={"image": "dressvision:test", "vcpus": 1, "memory": 512},
            )
        yield client


def describe(client, job_id: str) -> dict:
    (job,) = client.describe_jobs(jobs=[job_id])["jobs"]
    return job


def test_batch_submits_array_job_with_command_and_environment(batch) -> None:
    runner = BatchJobRunner(QUEUE, {"infer": "dressvision-infer"})
    request = JobRequest(
        name="infer",
        args=["--manifest", "manifests/infer/m1.jsonl"],
        array_size=4,
        environment={"DRESSVISION_RUN": "r1"},
        job_name="infer m1/2024",
    )

    job = describe(batch, runner.submit(request))

    assert job["jobQueue"].endswith(f"job-queue/{QUEUE}")
    assert job["jobDefinition"].split("/")[-1].startswith("dressvision-infer:")
    assert job["jobName"] == "infer-m1-2024"
    assert job["container"]["command"] == [
        "python",
        "-m",
        "batch_jobs.infer",
        "--manifest",
        "manifests/infer/m1.jsonl",
    ]
    assert {"name": "DRESSVISION_RUN", "value": "r1"} in job["container"]["environment"]
    assert job["arrayProperties"]["size"] == 4


def test_batch_plain_job_has_no_array_properties(batch) -> None:
    runner = BatchJobRunner(QUEUE, {"train": "dressvision-train"})

    job = describe(batch, runner.submit(JobRequest(name="train")))

    assert job["container"]["command"] == ["python", "-m", "batch_jobs.train"]
    assert job["jobDefinition"].split("/")[-1].startswith("dressvision-train:")
    assert re.fullmatch(r"dressvision-train-[0-9a-f]{8}", job["jobName"])
    assert "size" not in job.get("arrayProperties", {})


def test_batch_missing_definition_names_the_variable_to_set() -> None:
    runner = BatchJobRunner(QUEUE, {"infer": "dressvision-infer"}, client=object())

    with pytest.raises(JobSubmissionError, match="DRESSVISION_JOB_DEFINITION_TRAIN"):
        runner.submit(JobRequest(name="train"))


def test_batch_refusal_becomes_job_submission_error(batch) -> None:
    runner = BatchJobRunner("no-such-queue", {"infer": "dressvision-infer"})

    with pytest.raises(JobSubmissionError, match="no-such-queue") as err:
        runner.submit(JobRequest(name="infer"))
    assert err.value.__cause__ is not None


def test_reserved_environment_is_refused_before_submitting() -> None:
    runner = BatchJobRunner(QUEUE, {"infer": "d"}, client=object())

    with pytest.raises(JobSubmissionError, match="AWS_BATCH_JOB_ID"):
        runner.submit(JobRequest(name="infer", environment={"AWS_BATCH_JOB_ID": "x"}))


def test_batch_client_is_lazy_with_standard_retries(aws_env: None) -> None:
    runner = BatchJobRunner(QUEUE, {})

    assert runner._client is None
    assert runner.client.meta.config.retries["mode"] == "standard"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("retrain 2024/05 (ops)", "retrain-2024-05-ops-"),
        ("--leading_", "leading_"),
        ("x" * 200, "x" * 128),
        ("ok_name-1", "ok_name-1"),
    ],
)
def test_job_names_follow_batch_rules(given: str, expected: str) -> None:
    assert job_name_for(JobRequest(name="infer", job_name=given)) == expected


def test_job_name_default_and_unusable_names() -> None:
    for given in (None, "", "///"):
        name = job_name_for(JobRequest(name="train", job_name=given))
        assert re.fullmatch(r"dressvision-train-[0-9a-f]{8}", name)


# -- local subprocesses ---------------------------------------------------------------------

# A stand-in for `batch_jobs.infer`: records its environment, then exits 0, or 3 when its
# array index is listed after --fail, after printing "boom". It also records how many of its
# siblings run at once (files in a shared folder) so the bound on parallelism is observable.
FAKE_INFER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path

    out = Path(sys.argv[1])
    index = os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX", "single")
    running = out / "running"
    running.mkdir(parents=True, exist_ok=True)
    (running / index).touch()
    concurrent = len(list(running.iterdir()))
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    (running / index).unlink()
    (out / f"{index}.json").write_text(json.dumps({"env": dict(os.environ), "argv": sys.argv,
                                                   "concurrent": concurrent}))
    print(f"child {index} done")
    if "--fail" in sys.argv and index in sys.argv[sys.argv.index("--fail") + 1:]:
        print("boom", file=sys.stderr)
        sys.exit(3)
    """
)


@pytest.fixture
def fake_jobs(tmp_path: Path) -> Path:
    """A package `fakejobs` with an `infer` module and no `train` module; returns its parent."""
    package = tmp_path / "pkg" / "fakejobs"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "infer.py").write_text(FAKE_INFER)
    return package.parent


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home", job_queue="local-queue", job_definitions={"infer": "def-infer"}
    )


@pytest.fixture
def events() -> list[dict]:
    return []


@pytest.fixture
def runner(settings: Settings, fake_jobs: Path, tmp_path: Path, events: list[dict]):
    runner = LocalJobRunner(
        settings,
        log_dir=tmp_path / "logs",
        on_event=events.append,
        cwd=fake_jobs,
        module_prefix="fakejobs",
        max_parallel=2,
    )
    yield runner
    runner.wait(timeout=30)  # never leave a process behind


def test_local_job_succeeds_with_batch_environment_and_event(
    runner: LocalJobRunner,
    settings: Settings,
    events: list[dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INHERITED_FROM_PARENT", "yes")
    monkeypatch.setenv(HOME, "/overridden/by/settings")
    monkeypatch.setenv(BATCH_ARRAY_INDEX, "7")  # as if this process were a Batch child
    out = tmp_path / "out"

    job_id = runner.submit(
        JobRequest(
            name="infer",
            args=[str(out)],
            environment={"DRESSVISION_RUN": "r1", INFER_SHARD_SIZE: "7"},
        )
    )

    assert runner.wait(job_id, timeout=30) == {job_id: "SUCCEEDED"}
    assert runner.status(job_id) == "SUCCEEDED"
    seen = json.loads((out / "single.json").read_text())
    env = seen["env"]
    assert env[BATCH_JOB_ID] == job_id
    assert BATCH_ARRAY_INDEX not in env
    assert env["DRESSVISION_RUN"] == "r1"
    assert env[INFER_SHARD_SIZE] == "7"  # the request's environment wins over the settings
    assert env[HOME] == str(settings.home)
    assert env[JOB_QUEUE] == "local-queue"
    assert env["INHERITED_FROM_PARENT"] == "yes"
    assert seen["argv"][1:] == [str(out)]
    assert "child single done" in runner.log_path(job_id).read_text()

    (event,) = events
    parsed = BatchJobStateChange.model_validate(event)
    assert parsed.detail.job_id == job_id
    assert parsed.detail.status == "SUCCEEDED"
    assert parsed.detail.job_definition == "def-infer"
    assert parsed.detail.array_properties is None
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    detail = event["detail"]
    assert event["resources"] == [detail["jobArn"]]
    assert detail["jobArn"].endswith(f":job/{job_id}")
    assert detail["jobQueue"].endswith(":job-queue/local-queue")
    assert re.fullmatch(r"dressvision-infer-[0-9a-f]{8}", detail["jobName"])
    assert detail["container"]["exitCode"] == 0
    assert detail["container"]["command"][1:] == ["-m", "fakejobs.infer", str(out)]
    assert detail["container"]["logStreamName"] == str(runner.log_path(job_id))
    assert detail["createdAt"] <= detail["startedAt"] <= detail["stoppedAt"]
    assert detail["attempts"][0]["container"]["exitCode"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])


def test_local_job_failure_reports_exit_code_and_log_tail(
    runner: LocalJobRunner, events: list[dict], tmp_path: Path
) -> None:
    job_id = runner.submit(
        JobRequest(name="infer", args=[str(tmp_path / "out"), "--fail", "single"])
    )

    assert runner.wait(job_id, timeout=30) == {job_id: "FAILED"}
    detail = BatchJobStateChange.model_validate(events[0]).detail
    assert detail.status == "FAILED"
    assert detail.container["exitCode"] == 3
    assert "exit code 3" in detail.status_reason
    assert "boom" in detail.status_reason


def test_local_array_job_runs_every_index_with_bounded_parallelism(
    runner: LocalJobRunner, events: list[dict], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job_id = runner.submit(
        JobRequest(name="infer", args=[str(out)], array_size=4, environment={"FAKE_SLEEP": "0.3"})
    )

    assert runner.wait(timeout=30) == {job_id: "SUCCEEDED"}
    seen = {i: json.loads((out / f"{i}.json").read_text()) for i in range(4)}
    for index, record in seen.items():
        assert record["env"][BATCH_ARRAY_INDEX] == str(index)
        assert record["env"][BATCH_JOB_ID] == f"{job_id}:{index}"
        assert record["env"]["AWS_BATCH_JOB_ARRAY_SIZE"] == "4"
    assert max(record["concurrent"] for record in seen.values()) <= 2
    (event,) = events  # one event, for the parent
    detail = BatchJobStateChange.model_validate(event).detail
    assert detail.array_properties["size"] == 4
    assert detail.array_properties["statusSummary"]["SUCCEEDED"] == 4
    assert detail.status == "SUCCEEDED"


def test_local_array_job_fails_when_one_child_fails(
    runner: LocalJobRunner, events: list[dict], tmp_path: Path
) -> None:
    job_id = runner.submit(
        JobRequest(name="infer", args=[str(tmp_path / "out"), "--fail", "1"], array_size=3)
    )

    assert runner.wait(job_id, timeout=30) == {job_id: "FAILED"}
    detail = BatchJobStateChange.model_validate(events[0]).detail
    assert detail.array_properties["statusSummary"]["FAILED"] == 1
    assert detail.array_properties["statusSummary"]["SUCCEEDED"] == 2
    assert "child 1" in detail.status_reason
    assert "boom" in detail.status_reason
    assert "child 1: exit code 3" in runner.log_path(job_id).read_text()


def test_local_missing_job_module_fails_the_job_not_the_runner(
    runner: LocalJobRunner, events: list[dict], tmp_path: Path
) -> None:
    missing = runner.submit(JobRequest(name="train"))  # fakejobs has no train module
    assert runner.wait(missing, timeout=30) == {missing: "FAILED"}
    reason = BatchJobStateChange.model_validate(events[0]).detail.status_reason
    assert "exit code 1" in reason
    assert "No module named fakejobs.train" in reason

    ok = runner.submit(JobRequest(name="infer", args=[str(tmp_path / "out")]))
    assert runner.wait(ok, timeout=30) == {ok: "SUCCEEDED"}


def test_local_wait_times_out_while_job_runs(runner: LocalJobRunner, tmp_path: Path) -> None:
    job_id = runner.submit(
        JobRequest(name="infer", args=[str(tmp_path / "out")], environment={"FAKE_SLEEP": "1"})
    )

    with pytest.raises(TimeoutError, match=job_id):
        runner.wait(job_id, timeout=0.05)
    assert runner.status(job_id) in ("SUBMITTED", "RUNNING")
    assert runner.wait(timeout=30) == {job_id: "SUCCEEDED"}


def test_local_event_consumer_errors_do_not_break_the_runner(
    settings: Settings, fake_jobs: Path, tmp_path: Path
) -> None:
    def broken(event: dict) -> None:
        raise RuntimeError("consumer down")

    runner = LocalJobRunner(
        settings,
        log_dir=tmp_path / "logs",
        on_event=broken,
        cwd=fake_jobs,
        module_prefix="fakejobs",
    )
    job_id = runner.submit(JobRequest(name="infer", args=[str(tmp_path / "out")]))

    assert runner.wait(job_id, timeout=30) == {job_id: "SUCCEEDED"}


def test_local_missing_interpreter_fails_the_job(
    settings: Settings, tmp_path: Path, events: list[dict]
) -> None:
    runner = LocalJobRunner(
        settings,
        log_dir=tmp_path / "logs",
        on_event=events.append,
        python=str(tmp_path / "no-python"),
    )
    job_id = runner.submit(JobRequest(name="infer"))

    assert runner.wait(job_id, timeout=30) == {job_id: "FAILED"}
    detail = events[0]["detail"]
    assert "exit code 127" in detail["statusReason"]
    # By default the runner runs the real job package, like Batch does.
    assert detail["container"]["command"] == [str(tmp_path / "no-python"), "-m", "batch_jobs.infer"]


def test_local_unknown_job_and_reserved_environment(runner: LocalJobRunner) -> None:
    with pytest.raises(NotFoundError):
        runner.status("nope")
    with pytest.raises(JobSubmissionError):
        runner.submit(JobRequest(name="infer", environment={"AWS_BATCH_JOB_ARRAY_INDEX": "0"}))
