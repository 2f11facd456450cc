"""Complete the look: which garments go together, learned from street photos (stage layer)."""
