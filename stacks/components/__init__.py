"""Constructs: one logical unit each, exposing its resources as typed attributes."""
