"""Sending digests: select, render, MIME wire form, SMTP, and the delivery phase."""
