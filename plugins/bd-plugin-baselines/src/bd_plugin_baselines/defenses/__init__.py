"""The baseline defenses: input preprocessing, fine-tuning, fine-pruning, STRIP."""
