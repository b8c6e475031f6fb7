"""Amaranth gateware of the Forward-Forward accelerator: one component per concept."""
