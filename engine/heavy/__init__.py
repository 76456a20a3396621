"""What runs only in the engine process: data tokenization, model download and preparation, training,
generation and chat. Imports torch and the Hugging Face libraries freely; the GUI never imports it."""

from engine.heavy import hub_kernels

# Before any module here imports transformers or bitsandbytes: nothing is fetched from the hub and run unasked.
hub_kernels.switch_off()
# Downloads the user asks for (a hub model) carry no usage report to the hub's telemetry endpoint.
import os as _os

_os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
