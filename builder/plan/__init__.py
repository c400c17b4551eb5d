"""The build plan: the stage DAG a lock and the catalogue make, with memory-aware parallelism."""
