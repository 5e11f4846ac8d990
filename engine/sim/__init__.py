"""Simulated engines (virtual time): vLLM V1 model, embedding batches, cost models, presets."""

from engine.sim.embed import SimEmbeddingEngine
from engine.sim.events import SimEvent
from engine.sim.llm import SimLLMEngine

__all__ = ["SimEmbeddingEngine", "SimEvent", "SimLLMEngine"]
