"""The search page: server-rendered HTML over the same services as the REST API, signed in by cookie."""
