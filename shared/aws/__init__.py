"""Adapters that run on AWS: DynamoDB tables, S3 buckets, AWS Batch jobs, SQS queues.

Each implements a port of `shared.ports`; only the composition roots (`shared.backends`,
`lambdas.wiring`) import them. boto3 clients are created lazily and can be injected.
"""
