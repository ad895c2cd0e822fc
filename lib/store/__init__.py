"""What the API and the worker share in Redis and beanstalkd: the keyspace, the payment and the
scripts that change it, the rate limit, the job queue and worker heartbeats. May import lib.runtime.
"""
