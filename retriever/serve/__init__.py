"""`retriever serve`: HTTP routes (server) over the service that holds the loaded indexes; the search page."""
