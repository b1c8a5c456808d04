"""Rate limits shared by every API process and host, counted in the database."""
