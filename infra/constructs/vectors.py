"""The similarity indexes on AWS: one Amazon S3 Vectors bucket with a cosine index per embedder
kind (`shared.keys`: names and dimensions), and the two ways into them: writing (the infer job
puts and deletes vectors; ingest deletes an image that became invalid) and querying (the
`similar` function queries and gets, nothing else).

The bucket encrypts with S3-managed keys (SSE-S3, the service default, stated here so it shows).
Every metadata key is filterable (none is listed as non-filterable): queries filter on product
id, split, embedder version and any predicted facet.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3vectors as s3vectors
from constructs import Construct

from shared.keys import EMBEDDING_DIMENSIONS, EMBEDDING_KINDS, vector_index_name

WRITE_ACTIONS = ("s3vectors:PutVectors", "s3vectors:DeleteVectors")
DELETE_ACTIONS = ("s3vectors:DeleteVectors",)
# QueryVectors with returnMetadata or a filter also needs GetVectors on the index.
QUERY_ACTIONS = ("s3vectors:QueryVectors", "s3vectors:GetVectors")


class SimilarityVectors(Construct):
    """`bucket_name` (for DRESSVISION_VECTOR_BUCKET) and one index per embedder kind."""

    def __init__(self, scope: Construct, construct_id: str, *, name_prefix: str) -> None:
        super().__init__(scope, construct_id)
        self.bucket_name = f"{name_prefix}-vectors"
        self.bucket = s3vectors.CfnVectorBucket(
            self,
            "Bucket",
            vector_bucket_name=self.bucket_name,
            encryption_configuration=s3vectors.CfnVectorBucket.EncryptionConfigurationProperty(
                sse_type="AES256"
            ),
        )
        self.indexes: dict[str, s3vectors.CfnIndex] = {}
        for kind in EMBEDDING_KINDS:
            index = s3vectors.CfnIndex(
                self,
                f"Index-{kind}",
                vector_bucket_name=self.bucket_name,
                index_name=vector_index_name(kind),
                data_type="float32",
                dimension=EMBEDDING_DIMENSIONS[kind],
                distance_metric="cosine",
            )
            index.add_dependency(self.bucket)
            self.indexes[kind] = index

    @property
    def index_arns(self) -> list[str]:
        return [index.attr_index_arn for index in self.indexes.values()]

    def _grant(self, role: iam.IRole, sid: str, actions: tuple[str, ...]) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(sid=sid, actions=list(actions), resources=self.index_arns)
        )

    def grant_write(self, role: iam.IRole) -> None:
        """Put and delete vectors (the infer job)."""
        self._grant(role, "SimilarityIndexWrite", WRITE_ACTIONS)

    def grant_delete(self, role: iam.IRole) -> None:
        """Delete vectors only (ingest: an image that became invalid)."""
        self._grant(role, "SimilarityIndexDelete", DELETE_ACTIONS)

    def grant_query(self, role: iam.IRole) -> None:
        """Query and get vectors, nothing else (the similar function)."""
        self._grant(role, "SimilarityIndexQuery", QUERY_ACTIONS)
