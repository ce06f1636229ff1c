"""Local stand-ins for SageMaker's built-in algorithm containers (run as job processes; see each module)."""
