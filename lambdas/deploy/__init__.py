"""The deploy Lambda: model-package approval → endpoint (realtime canary / serverless) or batch model."""
