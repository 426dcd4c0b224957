"""Models: the tiny LLaVA builder, prompt encoding and the adapter chain."""
