"""Serial-port checks for installers (`parkgate doctor`)."""
