"""Product recommendations: implicit feedback, item-to-item models, evaluation, serving.

`interactions` turns events into weighted product touches; `models` fits
item-item collaborative filtering, content-based filtering, popularity and
their hybrid; `evaluation` compares them on a time split; `training` reads
events from MongoDB and registers the model; `serving` answers pages within
the scoring budget; `trending` keeps recent popularity fresh; `synthetic`
generates shoppers with latent tastes. See docs/recommendations.md.
"""
