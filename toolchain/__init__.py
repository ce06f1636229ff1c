"""The toolchain's post-deploy steps (standard library + boto3 only: they run in a CodeBuild step)."""
