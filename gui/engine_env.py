"""The engine environment of an installed app: which build of PyTorch this machine needs, and how to set it up.

The thin app bundles only the window. On first run it creates a Python environment in the data folder with the
bundled ``uv``, from a pinned per-platform lock file (``packaging/requirements/engine-<platform>.txt``) plus the
torch wheel of the chosen backend (CUDA for the installed driver, or CPU), installs the engine itself from the
bundled wheel, and runs the engine's self-test. What was installed is recorded in ``engine/installed.json``.
Development installs and the offline edition need none of this: their engine runs from the app's own Python.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from engine.light import gpu, paths

TORCH_VERSION = "2.13.0"
TORCH_INDEX = "https://download.pytorch.org/whl/{backend}"
PYTHON_VERSION = "3.11"


@dataclass(frozen=True)
class Backend:
    key: str
    label: str
    cuda: tuple[int, int] | None = None  # the CUDA version the torch build needs from the driver
    linux_driver: str = ""  # the oldest driver that supports it
    windows_driver: str = ""


# torch's CUDA builds for TORCH_VERSION, newest first; each needs a driver that supports its CUDA version.
BACKENDS = (
    Backend("cu130", "NVIDIA GPU (CUDA 13.0)", (13, 0), "580.65.06", "580.88"),
    Backend("cu128", "NVIDIA GPU (CUDA 12.8)", (12, 8), "570.26", "570.65"),
    Backend("cu126", "NVIDIA GPU (CUDA 12.6)", (12, 6), "560.28.03", "560.76"),
)
CPU = Backend("cpu", "CPU only (slow; the demo model and small tests)")
ALL_BACKENDS = {b.key: b for b in (*BACKENDS, CPU)}


@dataclass
class Detection:
    """What this machine has, as NVML (or else nvidia-smi) reports it."""

    gpu: str | None = None
    driver: str | None = None
    cuda: tuple[int, int] | None = None  # the newest CUDA version the driver supports
    source: str = ""  # "nvml", "nvidia-smi" or "" (nothing found)
    reason: str = ""  # why no GPU was found


@dataclass
class Choice:
    backend: Backend
    why: str
    action: str = ""  # what the user can do for a better backend (update the driver), if anything


def from_probe(probe: gpu.Probe) -> Detection | None:
    """NVML's answer, or None when NVML found nothing (then nvidia-smi may still know the driver)."""
    if probe.available and probe.gpus:
        return Detection(probe.gpus[0].name, probe.driver, _version(probe.cuda_driver), "nvml")
    return None


def nvidia_smi_command() -> list[str] | None:
    smi = shutil.which("nvidia-smi")
    return [smi, *NVIDIA_SMI_QUERY] if smi else None


def from_nvidia_smi(output: str, probe: gpu.Probe) -> Detection:
    parsed = parse_nvidia_smi(output)
    return parsed if parsed.driver else Detection(reason=f"{probe.reason}; {parsed.reason}")


def detect(probe: gpu.Probe | None = None) -> Detection:
    """What this machine has, waiting for nvidia-smi if NVML knows nothing (the headless setup; the Engine page runs
    nvidia-smi in the background instead)."""
    probe = probe or gpu.probe()
    found = from_probe(probe)
    if found is not None:
        return found
    command = nvidia_smi_command()
    if command is None:
        return Detection(reason=probe.reason or "no NVIDIA GPU")
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Detection(reason=f"nvidia-smi did not answer ({exc})")
    return from_nvidia_smi(output, probe)


# nvidia-smi's machine-readable query: the same columns on every platform and driver model (WDDM or TCC on Windows),
# unlike its table. The driver's CUDA version is not among the query's fields; it follows from the driver version.
NVIDIA_SMI_QUERY = ["--query-gpu=name,driver_version", "--format=csv,noheader,nounits"]
# The oldest driver of each CUDA version (NVIDIA's CUDA release notes), newest first: (CUDA, Linux, Windows).
DRIVER_CUDA = (((13, 0), "580.65.06", "580.88"), ((12, 9), "575.51.03", "576.02"), ((12, 8), "570.26", "570.65"),
               ((12, 6), "560.28.03", "560.76"), ((12, 5), "555.42.02", "555.85"), ((12, 4), "550.54.14", "551.61"),
               ((12, 3), "545.23.06", "545.84"), ((12, 2), "535.54.03", "536.25"), ((12, 1), "530.30.02", "531.14"),
               ((12, 0), "525.60.13", "527.41"))


def parse_nvidia_smi(output: str, platform: str = sys.platform) -> Detection:
    """The first GPU's name, the driver and the newest CUDA version it supports, from the query's CSV lines
    ("NVIDIA GeForce RTX 4090, 560.35.03"); anything else (the driver is not loaded) says why."""
    for line in output.splitlines():
        name, sep, driver = (part.strip() for part in line.rpartition(","))
        if sep and name and re.fullmatch(r"\d+(\.\d+)+", driver):
            return Detection(name, driver, cuda_for_driver(driver, platform), "nvidia-smi")
    first = output.strip().splitlines()[0] if output.strip() else "no output"
    return Detection(reason=f"nvidia-smi found no driver: {first}")


def cuda_for_driver(driver: str, platform: str = sys.platform) -> tuple[int, int] | None:
    version = _numbers(driver)
    for cuda, linux, windows in DRIVER_CUDA:
        if version >= _numbers(windows if platform == "win32" else linux):
            return cuda
    return None


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def choose(detection: Detection, platform: str = sys.platform) -> Choice:
    """The newest backend the machine can run, and what would allow a better one."""
    if platform == "darwin":
        return Choice(CPU, "macOS has no NVIDIA GPUs: the engine runs on the CPU (Apple's GPU is not used for "
                      "4-bit training)")
    if detection.gpu is None and detection.driver is None:
        return Choice(CPU, f"{detection.reason or 'no NVIDIA GPU found'}: the engine runs on the CPU",
                      "with an NVIDIA GPU, install its driver and choose Reinstall")
    name = detection.gpu or "the NVIDIA GPU"
    if detection.cuda is None:
        return Choice(CPU, f"{name} was found, but its driver's CUDA version could not be read",
                      "update the NVIDIA driver, then choose Reinstall; or pick a CUDA backend by hand")
    for backend in BACKENDS:
        if detection.cuda >= backend.cuda:
            return Choice(backend, f"{name}, driver {detection.driver} (CUDA {_text(detection.cuda)})")
    oldest = BACKENDS[-1]
    driver = oldest.windows_driver if platform == "win32" else oldest.linux_driver
    return Choice(CPU, f"the driver of {name} ({detection.driver}) supports CUDA {_text(detection.cuda)}, and "
                  f"LlamaDesk's GPU engine needs CUDA {_text(oldest.cuda)} or newer: until the driver is updated, "
                  "the engine runs on the CPU",
                  f"update the NVIDIA driver to {driver} or newer, then choose Reinstall")


def platform_name(platform: str = sys.platform) -> str:
    return {"win32": "windows", "darwin": "macos"}.get(platform, "linux")


@dataclass
class Sources:
    """Where the installer takes things from. ``wheels``: a folder of wheels to prefer (with ``offline``, the only
    source); ``torch_wheels``: a folder holding the torch wheel to use instead of the backend's index."""

    uv: str
    lock: Path
    project_wheel: Path
    wheels: Path | None = None
    offline: bool = False
    torch_wheels: Path | None = None

    @classmethod
    def bundled(cls) -> Sources:
        """What the frozen app carries under engine-setup/ (next to the sources in a development checkout)."""
        frozen = getattr(sys, "_MEIPASS", None)
        base = Path(frozen) / "engine-setup" if frozen else Path(__file__).resolve().parent.parent / "build" / \
            "engine-setup"
        uv = base / ("uv.exe" if sys.platform == "win32" else "uv")
        wheels = sorted(base.glob("llamadesk-*.whl"))
        return cls(str(uv), base / f"engine-{platform_name()}.txt", wheels[-1] if wheels else base / "missing.whl",
                   base / "wheels" if (base / "wheels").is_dir() else None)


@dataclass
class Step:
    title: str
    command: list[str]


@dataclass
class EngineEnv:
    root: Path = field(default_factory=lambda: paths.home() / "engine")

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")

    @property
    def record_file(self) -> Path:
        return self.root / "installed.json"

    def record(self) -> dict | None:
        try:
            return json.loads(self.record_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def ready(self) -> bool:
        record = self.record()
        return bool(record and record.get("selftest", {}).get("ok")) and self.python.is_file()

    def command(self) -> list[str]:
        return [str(self.python), "-m", "engine"]

    def steps(self, backend: Backend, sources: Sources) -> list[Step]:
        """The install, as argument lists (never a shell line). Re-running them repairs a damaged environment."""
        py = ["--python", str(self.python)]
        local = ["--find-links", str(sources.wheels)] if sources.wheels else []
        if sources.offline:
            local.append("--no-index")
        if sources.torch_wheels:
            torch_source = ["--no-index", "--find-links", str(sources.torch_wheels)]
        elif sources.wheels:
            torch_source = local
        else:
            torch_source = ["--index-url", TORCH_INDEX.format(backend=backend.key)]
        return [
            Step("Create the Python environment",
                 [sources.uv, "venv", "--seed", "--allow-existing", "--python", PYTHON_VERSION, str(self.venv)]),
            Step("Install the engine's libraries",
                 # The lock is complete but for torch, so nothing is resolved: every file is checked by hash.
                 [sources.uv, "pip", "install", *py, "--no-deps", "--require-hashes", "-r", str(sources.lock),
                  *local]),
            Step(f"Install PyTorch {TORCH_VERSION} ({backend.label})",
                 [sources.uv, "pip", "install", *py, f"torch=={TORCH_VERSION}", *torch_source]),
            Step("Install the LlamaDesk engine",
                 [sources.uv, "pip", "install", *py, "--no-deps", "--reinstall-package", "llamadesk",
                  str(sources.project_wheel)]),
            Step("Self-test", [str(self.python), "-m", "engine", "selftest", "--json"]),
        ]

    def write_record(self, backend: Backend, detection: Detection, selftest: dict) -> dict:
        record = {"backend": backend.key, "torch": TORCH_VERSION, "detection": asdict(detection),
                  "selftest": selftest, "installed": datetime.now().isoformat(timespec="seconds"),
                  "python": str(self.python)}
        self.root.mkdir(parents=True, exist_ok=True)
        self.record_file.write_text(json.dumps(record, indent=2), encoding="utf-8")
        return record

    def remove(self) -> None:
        """Reinstall starts from nothing: the environment and its record go."""
        self.record_file.unlink(missing_ok=True)
        shutil.rmtree(self.venv, ignore_errors=True)


def bundled_engine() -> bool:
    """Whether this (frozen) app carries the engine itself: the offline edition."""
    return (Path(getattr(sys, "_MEIPASS", "")) / "engine-bundled").is_file()


def _version(text: str | None) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _text(version: tuple[int, int] | None) -> str:
    return f"{version[0]}.{version[1]}" if version else "?"


def install(env: EngineEnv, backend: Backend, sources: Sources, detection: Detection,
            say=print) -> dict:
    """Run the install steps here (the headless ``--setup-engine``); returns the record it writes."""
    steps = env.steps(backend, sources)
    output = ""
    for number, step in enumerate(steps, 1):
        say(f"[{number}/{len(steps)}] {step.title}")
        process = subprocess.Popen(step.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   encoding="utf-8", errors="replace")
        lines = []
        for line in process.stdout:
            lines.append(line)
            if step.title != "Self-test":
                say("    " + line.rstrip())
        output = "".join(lines)
        if process.wait() != 0 and step.title != "Self-test":
            raise SetupFailed(step.title, output)
    return env.write_record(backend, detection, selftest_result(output))


def selftest_result(output: str) -> dict:
    """The engine self-test's JSON (its last line), or a failed result holding what it printed."""
    for line in reversed(output.strip().splitlines()):
        try:
            result = json.loads(line)
        except ValueError:
            continue
        if isinstance(result, dict) and "ok" in result:
            return result
    return {"ok": False, "problems": [output.strip()[-2000:] or "the self-test printed nothing"]}


class SetupFailed(Exception):
    def __init__(self, step: str, output: str):
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(f"{step} failed:\n{tail}")
        self.step, self.output = step, output
