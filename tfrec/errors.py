"""Errors shared by the data readers and the family registry (below both, so neither imports the other for them)."""


class DatasetError(FileNotFoundError):
    """A prepared dataset directory is missing or incomplete."""
