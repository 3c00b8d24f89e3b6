"""The models: the LLM backbones and their anatomy, the embedding methods (encoders/), the trained
sentence encoder, and the numerics that keep a text's vectors batch-invariant."""
