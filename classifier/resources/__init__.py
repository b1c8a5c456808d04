"""Package data of the classifier (the stop-word list)."""
