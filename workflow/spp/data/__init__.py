"""Datasets: fetch (official, mirror or shipped subsets), md5-verify, parse, and the train /
val / test splits every stage reads (`datasets`); archive readers (`archives`); the small subsets
the repository ships (`subsets`)."""
