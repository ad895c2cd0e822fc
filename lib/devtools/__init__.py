"""Tools for developers, not shipped in the image: `make run`, `make demo`, `make bench`, local
servers and child processes. May import anything in lib.
"""
