"""Authentication factors: one module per factor behind one Protocol (DESIGN §6)."""
