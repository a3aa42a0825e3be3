"""AWS Batch on GPU instances: compute environments, one job queue, a job definition per job.

Spot first (SPOT_PRICE_CAPACITY_OPTIMIZED: the cheapest pools among those least likely to be
interrupted), on-demand second; both scale from 0 vCPUs, so an idle stack runs no instance.
Jobs are `python -m batch_jobs.<name>` from the image built from `batch_jobs/Dockerfile`; the
job runner (`shared/aws/batch.py`) overrides the command with the request's arguments and the
job definition carries the deployment's settings as environment variables.

A job whose Spot host is taken away is retried (`Host EC2*`); anything else, a bug or bad input,
fails at once: a retry would only fail again and cost another GPU hour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.bundling import REPO_ROOT
from infra.nag import acknowledge
from shared.env import JOB_DEFINITION_PREFIX, JOB_QUEUE

JOBS = ("infer", "train")
DOCKERFILE = "batch_jobs/Dockerfile"
RETRY_ATTEMPTS = 3  # up to two Spot interruptions per job
# A job that asks for more than any instance offers would wait forever in RUNNABLE.
MISCONFIGURED_JOB_LIMIT = Duration.minutes(10)
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS


class GpuJobs(Construct):
    """`job_queue`, `job_definitions[name]`, and `job_roles[name]` to grant data access to."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        name_prefix: str,
        instance_types: Sequence[str],
        spot: bool,
        max_vcpus: int,
        job_vcpus: int,
        job_memory: Size,
        shared_memory: Size,
        timeouts: Mapping[str, Duration],
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.definition_names = {job: f"{name_prefix}-{job}" for job in JOBS}
        environments = []
        if spot:
            environments.append(
                self._compute_environment(
                    "Spot", vpc, subnets, security_group, instance_types, max_vcpus, spot=True
                )
            )
        environments.append(
            self._compute_environment(
                "OnDemand", vpc, subnets, security_group, instance_types, max_vcpus, spot=False
            )
        )
        self.job_queue = batch.JobQueue(
            self,
            "Queue",
            priority=1,
            compute_environments=[
                batch.OrderedComputeEnvironment(compute_environment=env, order=order)
                for order, env in enumerate(environments, start=1)
            ],
            job_state_time_limit_actions=[
                batch.JobStateTimeLimitAction(
                    max_time=MISCONFIGURED_JOB_LIMIT,
                    reason=batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
                    action=batch.JobStateTimeLimitActionsAction.CANCEL,
                )
            ],
        )
        self.image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(REPO_ROOT),  # .dockerignore keeps the context small
            file=DOCKERFILE,
            platform=ecr_assets.Platform.LINUX_AMD64,  # every GPU type here is x86_64
        )
        self.log_group = logs.LogGroup(
            self, "Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
        )
        job_environment = {**environment, **self.submission_environment()}
        self.job_roles: dict[str, iam.Role] = {}
        self.job_definitions: dict[str, batch.EcsJobDefinition] = {}
        for job in JOBS:
            self.job_roles[job] = iam.Role(
                self,
                f"{job.capitalize()}Role",
                assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                description=f"batch_jobs.{job}: only what the stack grants",
            )
            container = self._container(
                job,
                cpu=job_vcpus,
                memory=job_memory,
                shared_memory=shared_memory,
                environment=job_environment,
            )
            self.job_definitions[job] = batch.EcsJobDefinition(
                self,
                job.capitalize(),
                job_definition_name=self.definition_names[job],
                container=container,
                retry_attempts=RETRY_ATTEMPTS,
                retry_strategies=[
                    batch.RetryStrategy.of(
                        batch.Action.RETRY, batch.Reason.custom(on_status_reason="Host EC2*")
                    ),
                    batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_reason="*")),
                ],
                timeout=timeouts[job],
            )

    def _container(
        self,
        job: str,
        *,
        cpu: int,
        memory: Size,
        shared_memory: Size,
        environment: Mapping[str, str],
    ) -> batch.EcsEc2ContainerDefinition:
        """`python -m batch_jobs.<job>` on one GPU, logging to the jobs' log group."""
        container = batch.EcsEc2ContainerDefinition(
            self,
            f"{job.capitalize()}Container",
            image=ecs.ContainerImage.from_docker_image_asset(self.image),
            command=["python", "-m", f"batch_jobs.{job}"],
            cpu=cpu,
            memory=memory,
            gpu=1,
            environment=dict(environment),
            job_role=self.job_roles[job],
            linux_parameters=batch.LinuxParameters(
                self, f"{job.capitalize()}Linux", shared_memory_size=shared_memory
            ),
            logging=ecs.LogDriver.aws_logs(stream_prefix=job, log_group=self.log_group),
        )
        acknowledge(
            container,
            "AwsSolutions-IAM5[Resource::*]",
            "The execution role's ecr:GetAuthorizationToken has no resource-level "
            "permissions; the image pulls themselves are limited to the asset repository.",
        )
        return container

    def state_changes(self, *statuses: str) -> events.EventPattern:
        """EventBridge's "Batch Job State Change" events of this queue's jobs reaching one of
        `statuses`. Children of an array job are left out: the parent's event speaks for the
        job (one event per submitted job, not one per shard)."""
        return events.EventPattern(
            source=["aws.batch"],
            detail_type=["Batch Job State Change"],
            detail={
                "status": list(statuses),
                "jobQueue": [self.job_queue.job_queue_arn],
                "arrayProperties": {"index": [{"exists": False}]},
            },
        )

    def submission_environment(self) -> dict[str, str]:
        """What a submitter needs (`shared.env`): the queue and each job's definition name.

        Names, not ARNs: a name submits the latest active revision, and a job definition may
        carry its own name in its environment (its ARN would be a circular reference)."""
        env = {JOB_QUEUE: self.job_queue.job_queue_arn}
        for job, name in self.definition_names.items():
            env[JOB_DEFINITION_PREFIX + job.upper()] = name
        return env

    def grant_submit(self, role: iam.Role, *jobs: str) -> iam.Grant:
        """Allow `batch:SubmitJob` on this queue with the definitions of `jobs`, nothing else."""
        unknown = set(jobs) - set(JOBS)
        if unknown or not jobs:
            raise ValueError(f"grant_submit needs job names among {JOBS}, got {jobs}")
        stack = Stack.of(self)
        definition_arns = [
            # IAM matches `job-definition/<name>` for a submission by name and
            # `job-definition/<name>:<revision>` for one by ARN: both name this definition only.
            stack.format_arn(service="batch", resource="job-definition", resource_name=name)
            for job in jobs
            for name in (self.definition_names[job], f"{self.definition_names[job]}:*")
        ]
        for job in jobs:
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:"
                f"<AWS::AccountId>:job-definition/{self.definition_names[job]}:*]",
                "Every revision of this one job definition: a deploy that changes the job "
                "registers a new revision under the same name.",
            )
        return iam.Grant.add_to_principal(
            grantee=role,
            actions=["batch:SubmitJob"],
            resource_arns=[self.job_queue.job_queue_arn, *definition_arns],
        )

    def _compute_environment(
        self,
        construct_id: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        instance_types: Sequence[str],
        max_vcpus: int,
        *,
        spot: bool,
    ) -> batch.ManagedEc2EcsComputeEnvironment:
        environment = batch.ManagedEc2EcsComputeEnvironment(
            self,
            construct_id,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[security_group],
            instance_types=[ec2.InstanceType(name) for name in instance_types],
            use_optimal_instance_classes=False,  # "optimal" means CPU instances
            images=[batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023_NVIDIA)],
            spot=spot,
            allocation_strategy=(
                batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
                if spot
                else batch.AllocationStrategy.BEST_FIT_PROGRESSIVE
            ),
            minv_cpus=0,
            maxv_cpus=max_vcpus,
            update_to_latest_image_version=True,
        )
        acknowledge(
            environment,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonEC2ContainerServiceforEC2Role]",
            "The ECS container instance role AWS Batch documents for EC2 compute environments; "
            "AWS keeps it current with what the ECS agent needs.",
        )
        return environment
