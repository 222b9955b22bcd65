"""slr: train sign-language recognition models on keypoint or CNN-feature clips."""

__version__ = "0.1.0"
