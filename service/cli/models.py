"""Commands for models (`hotline train`, `predict`, `evaluate`)."""
