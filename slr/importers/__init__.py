"""Other people's landmark files -> slr clips (`slr import`; docs/own-landmarks.md).

One module per format reads a source sequence into a `Sequence` (points by name, NaN where the
source says a point was not found); `points` holds the layouts those points are kept in, `output`
writes the clips, labels.csv, classes.csv and layout.json, and `run` finds the sequences and imports
them in worker processes.
"""
