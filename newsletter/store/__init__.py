"""The state that must survive restarts (TinyDB files split by how often they change),
and the instance lock."""

from .deliveries import BouncePolicy
from .engine import StoreError
from .records import Delivery, KeywordDiff, PendingRequest, QueuedReply
from .store import Store, lock_path

__all__ = [
    "BouncePolicy",
    "Delivery",
    "KeywordDiff",
    "PendingRequest",
    "QueuedReply",
    "Store",
    "StoreError",
    "lock_path",
]
