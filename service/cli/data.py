"""Commands for reference and demo data (`hotline demo-data`)."""
