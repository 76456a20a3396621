"""Model catalog and model sources (hub, local folders, the offline demo model)."""
