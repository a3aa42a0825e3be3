"""The CDK app (`cdk.json` runs `.venv/bin/python -m infra.app`): one stack per stage.

    cdk synth                                  # the dev stage, settings from cdk.json
    cdk deploy -c dressvision:stage=prod -c dressvision:alarmEmail=ops@example.com

Environment-agnostic: the account and region are the ones of the credentials `cdk deploy` runs
with, and nothing is looked up at synth, so `cdk synth` works offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import App

from infra.nag import apply_checks
from infra.settings import StageSettings
from infra.stacks.dressvision import DressvisionStack


def build_app(*, context: Mapping[str, Any] | None = None, outdir: str | None = None) -> App:
    """The app with its stack and the cdk-nag checks; `context` and `outdir` are for tests
    (the CLI passes both through the environment)."""
    app = App(context=dict(context) if context else None, outdir=outdir)
    settings = StageSettings.from_context(app.node.get_all_context())
    DressvisionStack(
        app,
        settings.stack_name,
        settings=settings,
        description=f"dressvision {settings.stage}: catalog tagging with GPU batch jobs",
    )
    apply_checks(app)
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
