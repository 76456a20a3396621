"""Exporting a finished run where people run models: the merged Hugging Face model, GGUF (F16, Q8_0, Q4_K_M) for
llama.cpp and LM Studio, Ollama (GGUF with a Modelfile), or the adapter alone; each verified before it is done."""
