"""The shared core of every model family: settings and the method table, scoring, pruning rules, the
layer-loop engine (inference and training paths), losses, FLOPs, profiler regions and the `PrunedModel` base.
"""
