"""The lot operator's booking service (``parkgate booking-service``): renters' vehicle commitments."""
