"""Hugging Face *hub kernels* stay off: no compiled code is downloaded from the hub and run unless the user asks.

transformers (from 5.25) turns hub kernels on by default, and bitsandbytes' CPU backend fetches
``kernels-community/quantization-bitsandbytes`` through the ``kernels`` package on import whenever that package is
installed, whatever transformers was told. A local, private tool must not do either behind the user's back, so the
engine switches both off before transformers or bitsandbytes is imported: transformers through its own switch
(``USE_HUB_KERNELS``), bitsandbytes by a ``kernels.get_kernel`` that refuses (bitsandbytes then uses its built-in
CPU kernel, as it does without the package). ``LLAMADESK_HUB_KERNELS=1`` in the environment turns them on.
"""

from __future__ import annotations

import logging
import os

SETTING = "LLAMADESK_HUB_KERNELS"


def allowed() -> bool:
    return os.environ.get(SETTING, "").strip().lower() in ("1", "yes", "true", "on")


class HubKernelsOff(RuntimeError):
    pass


def _refuse(repo_id: str, *args, **kwargs):
    raise HubKernelsOff(f"hub kernel '{repo_id}' not fetched: hub kernels are off ({SETTING}=1 turns them on)")


def _not_the_hub_kernel_notice(record: logging.LogRecord) -> bool:
    """bitsandbytes says, on every start, that its hub kernel failed to load and to `pip install kernels`: with hub
    kernels off that is the intended state, and the advice would undo it."""
    return "kernels-community" not in record.getMessage()


def switch_off() -> bool:
    """Switch hub kernels off for this process and the processes it starts; False when the user turned them on."""
    if allowed():
        return False
    os.environ["USE_HUB_KERNELS"] = "0"
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_not_the_hub_kernel_notice)
    try:
        import kernels  # noqa: PLC0415 - only present when some library pulled it in
    except ImportError:
        return True
    kernels.get_kernel = _refuse
    return True
