"""The payment API: handlers and routes, validation, currencies and the /metrics page. May import
lib.store, lib.runtime and lib.http.
"""
