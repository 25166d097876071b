"""The archive: its Markdown, the files on disk, monthly pages, Atom feeds, git publishing."""
