"""Lane state machines: one per gate (entry or exit), pure and event-driven (see machine.py)."""
