"""OpenAI-compatible engine servers: serve-embed (sentence-transformers) and serve-sim."""
