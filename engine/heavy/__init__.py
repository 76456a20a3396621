"""What runs only in the engine process: data tokenization, model download and preparation, training,
generation and chat. Imports torch and the Hugging Face libraries freely; the GUI never imports it."""
