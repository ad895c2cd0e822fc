"""What both processes run on: configuration, logging, the clock and outage reporting. Imports
nothing else of paypoc's.
"""
