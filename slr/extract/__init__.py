"""Videos -> clips: MediaPipe Holistic keypoints (and InceptionV3 features) in the FSL-105 clip layout.

Shared by `slr extract` and by `slr predict` on videos, so a video gives the same answer as the clip
made of it. MediaPipe is an optional extra (``pip install -e ".[extract]"``); nothing here imports
it, torch or OpenCV at module level.
"""
