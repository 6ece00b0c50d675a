"""Signal propagation: the input-output Jacobian's singular values (`jacobian`) and
approximate isometry, the orthogonality repair of a pruned network (`isometry`)."""
