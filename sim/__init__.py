"""Simulation of the accelerator: Amaranth's simulator and cocotb benches of the Verilog."""
