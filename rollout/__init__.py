"""model-rollout: blue/green rollouts of ML model APIs with statistically confirmed rollback."""

__version__ = "0.1.0"
