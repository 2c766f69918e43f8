"""Check evaluation: the driver that applies deadlines to the check kinds' judges, and the tallies over output."""
