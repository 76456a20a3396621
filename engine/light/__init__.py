"""The torch-free part of the engine: the protocol, the run config and its schema, run folders, paths, the memory
estimate and fit advice, the GPU probe, the model catalog and model-folder checks. The GUI may import any of it;
nothing here imports torch, transformers, datasets, Qt or ``engine.heavy`` (tests/test_boundaries.py)."""
