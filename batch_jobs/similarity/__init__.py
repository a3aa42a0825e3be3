"""Dress similarity: embeddings of the located dress crop (unsupervised: the facet model's pooled
features; supervised: a triplet network after DeepRank), their evaluation and training."""
