"""The quality web app: model figures, confusion, errors, the catalog, retagging, review.

`web.app.create_app(ports, auth=...)` builds it over any deployment's ports: `dressvision serve`
on the embedded backends, `lambdas/web.py` (Mangum) on AWS. It imports `shared` only.
"""
