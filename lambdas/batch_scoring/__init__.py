"""The batch-scoring launcher: schedule → newest Approved model → one pipeline execution per new batch."""
