"""Index workers. In embedded mode an index operation runs inline, as a task of the process that opened
it (see semantik.gateway.operations and semantik.core.services.indexing); the arq workers of service
mode, which hand finished batches to the gateway, live here."""
