"""Deadline scans: warnings before the sign-for and handling deadlines, escalation after, and
on-time figures."""
