"""The digest templates, shipped in the package as newsletter.templates (see pyproject.toml).

A [digest] templates folder in settings.toml overrides them, file by file.
"""

HTML_TEMPLATE = "digest.html.j2"
TEXT_TEMPLATE = "digest.txt.j2"
STYLESHEET = "digest.css"
