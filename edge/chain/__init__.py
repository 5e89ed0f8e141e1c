"""Ethereum side of parkgate: the rental contract build, local anvil chain, deploy and client."""
