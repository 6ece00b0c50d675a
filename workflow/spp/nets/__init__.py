"""Networks: the architecture registry and Lee et al.'s networks (`models`), OpenLTH's networks
for Frankle et al. (`lth_models`), and the initialization schemes (`initializers`)."""
