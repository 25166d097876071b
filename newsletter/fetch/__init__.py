"""Asking arXiv for the newest papers of each keyword: the HTTP client, and one keyword's fetch."""
