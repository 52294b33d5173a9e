"""What agents say to each other: A2A cards, call contexts, codecs, errors, endpoints."""
