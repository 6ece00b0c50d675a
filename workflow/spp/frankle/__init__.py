"""Frankle et al. 2021 ("Pruning neural networks at initialization: why are we missing the
mark?"): the method x sparsity x ablation runs and their aggregation (`runs`), and the paper's
five claims judged on those runs (`claims`)."""
