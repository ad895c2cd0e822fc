"""HTTP plumbing: routing, JSON in and out, the one error type, the WSGI app object and the server.

Knows nothing of payments; imports nothing of paypoc's.
"""
