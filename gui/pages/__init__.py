"""The window's pages."""

PAGES = ("Model", "Dataset", "Train", "Chat", "Runs", "Engine")  # by name, in the order of the work
