"""Training: the protocol (`training`: config, schedule, one network), the loop every stepper
plugs into (`train_loop`), stacked seeds (`stacked`), the fast and CUDA-graph steps (`fastpath`,
`graph_step`), and the unsupervised pruning losses (`losses`)."""
