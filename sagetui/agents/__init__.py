"""Agent capability experiments (suite E): tool selection, timing and planning.

- items.py     the shapes every dataset becomes (tools, items, dev/test split)
- bfcl.py      BFCL v4 from the bfcl-eval package (the suite's dataset)
- dataset.py   the template-generated smoke set (data/*.jsonl)
- retrieval.py BM25, embeddings, their dev-tuned fusion; timing thresholds; planning
- llm.py       the LLM strategy's chat request (JSON answer) and its parsing
- scoring.py   function-name and argument checks, plan scores
- runner.py    every strategy as pipelines through the gateway, one stored run each
- engines.py   the engines and the in-process gateway the pipelines go through
"""
