"""The kinds of model a leg may need (Leg.models, Leg.query_models), declared once: the LLM's forward pass,
its tokenizer alone (what a query needs where the LLM runs at index time only), and a trained dense
encoder. A new kind (a SPLADE or ColBERT model) is a name here and its loader in the encode step."""

LLM = "llm"
TOKENIZER = "tokenizer"
DENSE_MODEL = "dense-model"
