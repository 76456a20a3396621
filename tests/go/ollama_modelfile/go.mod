module llamadesk.test/ollama_modelfile

go 1.19
