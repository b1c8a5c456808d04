"""Hotspots (热点预警): detection over recent appeals, the periodic scan and its tables."""
