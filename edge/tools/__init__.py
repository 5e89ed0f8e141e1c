"""parkgate's development tools, run from the repository (benchmarks, harnesses, emulator launchers).

Never installed: the wheel carries ``edge`` and ``firmware_bridge`` only, so nothing here reaches a Pi.
"""
