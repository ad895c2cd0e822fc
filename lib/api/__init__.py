"""The payment API: handlers and routes, validation, currencies, the rate limit, Idempotency-Key and
admission. May import lib.store and lib.http.
"""
