"""refvos: segment the object a sentence refers to, in an image or through a video."""

__version__ = "0.1.0"
