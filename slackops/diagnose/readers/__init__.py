"""Readers: one module per input dialect, each turning lines into :mod:`slackops.records` records.

``detect`` picks the reader for an input; ``prefix`` strips the line prefixes of real deployments; ``text`` is
the shared machinery of the SDK log readers.
"""
