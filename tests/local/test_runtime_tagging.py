"""On the one-machine runtime, a photo uploaded while a facet model is current is tagged by
the infer job (a subprocess) that the ingest handler submits."""

from __future__ import annotations

import pytest

from local.runtime import LocalRuntime

pytestmark = pytest.mark.slow


def test_upload_with_a_current_model_is_tagged_through_ingest_and_the_job_runner(
    photo, register_untrained_model, tmp_path
):
    runtime = LocalRuntime.open(tmp_path / "home", environ={})
    version = register_untrained_model(runtime.ports)
    for i in range(3):
        runtime.upload(f"catalog/p{i}/front.jpg", photo(i), content_type="image/jpeg")
    runtime.upload("catalog/p9/broken.jpg", photo(0)[:150], content_type="image/jpeg")
    runtime.wait_for_jobs(timeout=240)
    tagged = {p.image_id: p for p in runtime.ports.predictions.for_model(version)}
    assert set(tagged) == {"p0/front", "p1/front", "p2/front"}
    assert tagged["p0/front"].facets["sleeve"].label in runtime.ports.taxonomy.labels("sleeve")
