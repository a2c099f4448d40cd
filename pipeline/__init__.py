"""The framework: manifests, the stage contract, the planner, the Ray executor, the commit protocol and queries.

It knows nothing of images or captions; those live in `stages/`.
"""

__version__ = "0.1.0"
