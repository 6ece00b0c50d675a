"""Pruning: the score-method registry (`scores`) and one module per method family
(`sensitivity`: SNIP / magnitude / random, `grasp`, `synflow`), global top-k masks (`masks`), and
the Frankle ablations of a mask (`ablations`)."""
