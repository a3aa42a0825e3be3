"""What the Lambda runtime passes to a handler, for tests that call `handler` itself."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the runtime's context object that powertools reads."""

    function_name: str = "dressvision-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:dressvision-test"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name: str = "/aws/lambda/dressvision-test"
    log_stream_name: str = "2026/05/01/[$LATEST]abc"


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()
