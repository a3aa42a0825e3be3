"""The facet model: a ResNet backbone with one classification head per facet, its losses,
data pipeline, training engine, metrics and the predictor that inference and tagging share."""
