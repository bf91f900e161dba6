"""The private recording core, shared by every framework adapter (see docs/architecture.md).

- ``plan``: what to record (capture modes, ``every``, include/exclude patterns), decided once;
- ``support``: what every adapter needs besides its framework (host arrays into a run, ...);
- ``pipeline``: the hand-off from the training thread to the background writer.
"""
