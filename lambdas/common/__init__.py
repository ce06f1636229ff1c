"""What both lifecycle Lambdas share: env config parsing, structured errors, boto3 clients, the DynamoDB stores.

Standard library, boto3/botocore and Powertools only (a Lambda package ships ``lambdas/`` and ``naming/``).
"""
