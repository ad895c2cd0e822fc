"""The worker: its threads, one job's attempt, the simulated processor, the sweeper and the
heartbeat. May import lib.store and lib.runtime.
"""
