"""What the API and the worker share: configuration, logs, the Redis client, payments' keys and
scripts, the job queue, metrics and worker heartbeats. May import lib.http, nothing else of paypoc's.
"""
