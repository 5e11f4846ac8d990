"""Agent capability experiments (suite E): tool selection, task planning, timing.

- dataset.py   the shipped benchmark, generated deterministically from templates
- strategies.py tool retrieval: BM25, embeddings (the embedding engine), hybrid, LLM
- metrics.py   top-k accuracy, MRR, recall@k, plan and timing metrics
- runner.py    evaluates every strategy and stores one run per strategy
"""
