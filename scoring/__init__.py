"""Model scores: features, exposure logging, training, the model registry, serving, drift.

Nothing here blocks the request path on I/O: serving scores in a worker thread
within a time budget, and exposures are written in batches off the path.
"""
