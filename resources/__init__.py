"""Data files shipped with LlamaDesk: the model catalog, presets, templates and the sample dataset."""

from importlib.resources import files


def path(name: str):
    """A Traversable for a file shipped in this package, e.g. ``path("models.yaml")``."""
    return files(__name__).joinpath(name)
