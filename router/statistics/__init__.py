"""Supervisors' figures over a period and the rows of the CSV export."""
