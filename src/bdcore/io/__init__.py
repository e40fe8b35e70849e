"""Files: atomic writes and safe checkpoint loading."""
