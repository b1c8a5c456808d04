"""Notifications to departments and to the centre's supervisors."""
