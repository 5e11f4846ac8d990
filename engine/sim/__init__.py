"""Simulated engines (virtual time): vLLM V1 model, embedding batches, cost models, presets."""
