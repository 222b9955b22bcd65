"""Cross-validation by group (`slr cv`): folds, one run per recipe and fold, held-out scores, paired tests.

folds (outer group folds and inner validation splits), fold_run (one fold: train or continue, score
once), runner (every recipe on the same folds, in one process or several), paired (two recipes:
differences, interval, sign-flip and McNemar tests), report (JSON, CSV, PNG).
"""
