"""The identity store: SQLite (WAL) persistence of cameras, runs, tracklets, embeddings,
identities, assignments, events, model versions and crops.

``from pipeline.store import IdentityStore`` — see :mod:`pipeline.store.identity_store`.
"""

from pipeline.store.identity_store import IdentityStore
from pipeline.store.records import Event, IdentityRow, ModelVersion, Sighting, StoredTracklet
from pipeline.store.schema import SCHEMA_VERSION

__all__ = ["IdentityStore", "StoredTracklet", "Sighting", "IdentityRow", "ModelVersion", "Event", "SCHEMA_VERSION"]
