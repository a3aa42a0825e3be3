"""Issue 11, finding 6: the catalog bucket keeps versions, so a bad re-upload never destroys a
good photo, and the ingest Lambda may put the good version back (put, never delete)."""

from __future__ import annotations

import json


def test_the_catalog_bucket_is_versioned_with_noncurrent_versions_expiring(synth):
    (catalog,) = [b for b in synth.props("AWS::S3::Bucket") if "NotificationConfiguration" in b]
    assert catalog["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = catalog["LifecycleConfiguration"]["Rules"]
    assert any(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") for r in rules)


def test_ingest_may_put_catalog_objects_but_not_delete_them(cfn, synth):
    statements = cfn.statements_of_roles(synth, {cfn.role_of(synth, "lambdas.ingest.handler")})
    on_catalog = [s for s in statements if "catalog/*" in json.dumps(cfn.as_list(s["Resource"]))]
    actions = {a for s in on_catalog for a in cfn.actions_of(s)}
    assert any(a.startswith("s3:PutObject") for a in actions)
    assert not any(a.startswith("s3:DeleteObject") for a in actions)
