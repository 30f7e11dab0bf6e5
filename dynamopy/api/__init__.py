"""The HTTP face of a node: FastAPI app with the data, cluster and node routes."""
