"""`mesh eval`: how well the reviewers judge, measured on a labelled corpus of releases.

corpus.py   the labelled releases (services/review/corpus/) and their checks
judging.py  runs reviewers (the offline rules, or a model chain backed by them) over the corpus
scoring.py  pure: recall, false blocks, per-family precision/recall, the confusion matrix
fake.py     the fake Anthropic server as a perfect-but-gullible model, for the model path
report.py   the text and JSON the command prints
settings.py the thresholds a run must meet (MESH_EVAL_*)
"""
