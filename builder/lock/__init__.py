"""Locks: typed lock files, the decisions and environment they record, and drift."""
