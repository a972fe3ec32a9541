"""Token stores: where the workers of one deployment keep the one pair they share.

| store | shares the pair between |
|---|---|
| :class:`MemoryTokenStore` | threads and tasks of one process (the default) |
| :class:`FileTokenStore` | processes of one host |
| :class:`RedisTokenStore` | processes on every host |
| :class:`DjangoCacheTokenStore` | whatever the Django cache spans |
"""

from .base import TokenStore
from .django_cache import DjangoCacheTokenStore
from .file import FileTokenStore
from .memory import MemoryTokenStore
from .redis_store import RedisTokenStore

__all__ = [
    "DjangoCacheTokenStore",
    "FileTokenStore",
    "MemoryTokenStore",
    "RedisTokenStore",
    "TokenStore",
]
