"""Artifact stores: content-addressed blobs plus keyed files, on disk, in S3 or in memory.

Importing this package does not import boto3; :class:`S3ArtifactStore` imports it when a
store is built.
"""

from __future__ import annotations

from bascule.store.artifacts.base import ArtifactStore, check_key, sha256_hex
from bascule.store.artifacts.checks import check_artifact_store
from bascule.store.artifacts.local import LocalArtifactStore
from bascule.store.artifacts.memory import InMemoryArtifactStore
from bascule.store.artifacts.s3 import S3ArtifactStore

__all__ = [
    "ArtifactStore",
    "InMemoryArtifactStore",
    "LocalArtifactStore",
    "S3ArtifactStore",
    "check_artifact_store",
    "check_key",
    "sha256_hex",
]
