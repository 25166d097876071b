"""Daily Papers: new arXiv papers per keyword, a Markdown archive, and per-subscriber digests."""

__version__ = "0.1.0"
