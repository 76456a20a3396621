"""LlamaDesk engine: data, models and training, as a command line (``llamadesk-engine``).

``engine.light`` is the torch-free part the GUI may import; ``engine.heavy`` runs only in the engine process. See
docs/ARCHITECTURE.md for the two processes, the protocol, the run folder and what may import what.
"""

__version__ = "0.1.0"
