"""Erasure of a data subject (right to erasure): the logic (:mod:`.logic`) and its Lambda handler."""
