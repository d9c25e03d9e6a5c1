"""The identity store: SQLite (WAL) persistence of cameras, runs, tracklets, embeddings,
identities, assignments, events, model versions and crops.

``from pipeline.store import IdentityStore`` — see :mod:`pipeline.store.identity_store`.
"""

from pipeline.store.identity_store import IdentityConflictError, IdentityStore
from pipeline.store.lock import StoreLockedError
from pipeline.store.records import Event, IdentityRow, ModelVersion, Sighting, StoredTracklet
from pipeline.store.schema import SCHEMA_VERSION

__all__ = ["IdentityStore", "StoreLockedError", "IdentityConflictError", "StoredTracklet", "Sighting", "IdentityRow",
           "ModelVersion", "Event", "SCHEMA_VERSION"]
