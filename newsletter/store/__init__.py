"""The state that must survive restarts (TinyDB), and the instance lock."""

from .engine import StoreError
from .records import Delivery, PendingRequest, QueuedReply
from .store import KeywordDiff, Store, lock_path

__all__ = [
    "Delivery",
    "KeywordDiff",
    "PendingRequest",
    "QueuedReply",
    "Store",
    "StoreError",
    "lock_path",
]
