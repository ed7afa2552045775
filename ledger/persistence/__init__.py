"""The persistence layer: how events are encoded (msgpack) and which store holds them.

Imports the domain layer only.
"""
