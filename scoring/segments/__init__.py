"""Learned visitor segments: k-means over behavioural features, labelled, assigned at ingestion.

`model` holds the features, the fit (k by silhouette) and the labels;
`training` reads profiles, registers a segmentation and (re)assigns every
profile; `serving` assigns new and changed profiles at ingestion; `report`
shows sizes, centroids, drift over time and stability. See docs/segments.md.
"""
