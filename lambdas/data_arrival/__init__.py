"""The data-arrival Lambda: S3 ``Object Created`` of a team's batch marker → the team's pipeline, once."""
