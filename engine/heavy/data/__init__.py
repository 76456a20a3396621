"""The path from a user's dataset file to tokenized training examples: read, detect, validate, render, tokenize."""
