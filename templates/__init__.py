"""The digest templates, shipped in the package as newsletter.templates (see pyproject.toml).

A [digest] templates folder in settings.toml overrides them, file by file.
"""
