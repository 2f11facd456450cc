"""Per-user taste: events a shopper makes, the profile learned from them (stage layer)."""
