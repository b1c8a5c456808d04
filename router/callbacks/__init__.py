"""Satisfaction callbacks (回访): the table, scheduling after closure and recording results."""
