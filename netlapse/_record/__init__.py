"""The private recording core, shared by the framework adapters (map: docs/architecture.md).

- ``plan``: what to record (capture modes, ``every``, include/exclude patterns), decided once;
- ``probe_plan``: which layers a probe records;
- ``support``: what every adapter needs besides its framework (open-run check, probe split and
  errors, model summary, dtype widening, first tensor of an output, instance patches, host
  arrays into a run);
- ``pipeline``: the training thread's side of the hand-off (buffers, groups, messages);
- ``writer_loop``: the writer thread (summaries, batches, commits through ``StoreSink``);
- ``distributed``, ``torch_dist``: ``torch.distributed`` (rank 0 writes, reduced stats).
"""
