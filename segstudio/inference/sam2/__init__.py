"""SAM 2.1 (Meta) as a click model, through Hugging Face transformers: `spec` (no torch: the
family, its weights and where they are found), `model` (the promptable model: embed an image,
decode points and boxes into candidate masks), `cache` (its embeddings, in memory and on disk)."""
