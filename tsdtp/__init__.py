"""tsdtp: task-specific dynamic token pruning with real token removal, measured."""

__version__ = "0.1.0"
