"""Channel adapters that turn incoming messages (phone transcripts, ...) into appeals."""
