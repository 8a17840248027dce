"""Models of how each user's interest decays, behind one interface (see ``base``)."""
