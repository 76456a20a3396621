"""Builds LlamaDesk's installable artefacts on this machine's platform.

    python packaging/build.py thin    # dist/thin/LlamaDesk/: the window; the engine is set up on first run
    python packaging/build.py full    # dist/full/LlamaDesk/: window and engine (the offline edition)
    python packaging/build.py deb  --variant full   # dist/llamadesk_<version>_amd64.deb from that folder

Each step prints what it made and its size. Needs the `package` extra (PyInstaller, uv).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD, DIST = ROOT / "build", ROOT / "dist"
SETUP = BUILD / "engine-setup"


def version() -> str:
    sys.path.insert(0, str(ROOT))
    from engine import __version__

    return __version__


def platform_lock() -> Path:
    name = {"win32": "windows", "darwin": "macos"}.get(sys.platform, "linux")
    return ROOT / "packaging" / "requirements" / f"engine-{name}.txt"


def _pins(lock: Path) -> dict[str, str]:
    """``name==version`` lines of a uv lock (hash and comment lines skipped), by normalised name."""
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip().rstrip("\\").strip()
        if "==" in line and not line.startswith("--"):
            name, version_ = line.split(";", 1)[0].split("==", 1)
            pins[_normal(name)] = version_.strip()
    return pins


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def lock_differences(lock: Path) -> list[str]:
    """How this environment differs from the lock: each locked library missing here or at another version."""
    from importlib import metadata

    installed = {_normal(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}
    return [f"{name}: the lock has {pinned}, this environment {installed.get(name, 'lacks it')}"
            for name, pinned in sorted(_pins(lock).items()) if installed.get(name) != pinned]


def check_environment(lock: Path) -> None:
    """The offline edition carries this environment's engine libraries: they must be the locked, tested ones."""
    differences = lock_differences(lock)
    shown = lock.relative_to(ROOT) if lock.is_relative_to(ROOT) else lock
    if differences:
        raise SystemExit(
            f"refusing to build the offline edition: this environment differs from {shown}, whose "
            f"versions the test suite passes with:\n  " + "\n  ".join(differences) + "\ninstall the lock first: "
            f"pip install --no-deps --require-hashes -r {shown}")


def prepare_setup(variant: str) -> None:
    """build/engine-setup: the engine wheel, the uv binary and the lock files (thin), or the bundled-engine marker."""
    shutil.rmtree(SETUP, ignore_errors=True)
    SETUP.mkdir(parents=True)
    if variant == "full":
        (SETUP / "engine-bundled").write_text("the engine runs from this bundle\n")
        return
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(SETUP), str(ROOT)], check=True)
    from uv import find_uv_bin

    shutil.copy2(find_uv_bin(), SETUP / ("uv.exe" if os.name == "nt" else "uv"))
    for lock in (ROOT / "packaging" / "requirements").glob("engine-*.txt"):
        shutil.copy2(lock, SETUP / lock.name)


def render_icons() -> None:
    """PNG and ICO renditions of the SVG icon, drawn with Qt (no extra tool)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 - image plugins need an application
    out = BUILD / "icons"
    out.mkdir(parents=True, exist_ok=True)
    renderer = QSvgRenderer(str(ROOT / "packaging" / "icons" / "llamadesk.svg"))
    for size in (256, 128, 64, 48, 32):
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        image.save(str(out / (f"llamadesk-{size}.png")))
        if size == 256:
            image.save(str(out / "llamadesk.png"))
            image.save(str(out / "llamadesk.ico"))


def windows_version_info() -> None:
    parts = (version().split(".") + ["0", "0", "0"])[:4]
    numbers = ", ".join(str(int(p)) if p.isdigit() else "0" for p in parts)
    text = f"""VSVersionInfo(
  ffi=FixedFileInfo(filevers=({numbers}), prodvers=({numbers})),
  kids=[StringFileInfo([StringTable('040904B0', [
    StringStruct('CompanyName', 'LlamaDesk'), StringStruct('FileDescription', 'LlamaDesk'),
    StringStruct('FileVersion', '{version()}'), StringStruct('ProductName', 'LlamaDesk'),
    StringStruct('ProductVersion', '{version()}'), StringStruct('LegalCopyright', 'Apache-2.0')])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])])
"""
    (BUILD / "version_info.txt").write_text(text, encoding="utf-8")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def compressed_bytes(folder: Path) -> int:
    archive = BUILD / f"{folder.parent.name}-size.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        tar.add(folder, arcname=folder.name)
    size = archive.stat().st_size
    archive.unlink()
    return size


def build_bundle(variant: str, *, measure: bool = True) -> Path:
    started = time.monotonic()
    if variant == "full":
        check_environment(platform_lock())
    prepare_setup(variant)
    render_icons()
    windows_version_info()
    dist = DIST / variant
    env = dict(os.environ, LLAMADESK_VARIANT=variant)
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
                    "--distpath", str(dist), "--workpath", str(BUILD / f"pyinstaller-{variant}"),
                    str(ROOT / "packaging" / "llamadesk.spec")], check=True, env=env, cwd=ROOT)
    folder = dist / "LlamaDesk"
    info = {"variant": variant, "version": version(), "seconds": round(time.monotonic() - started, 1),
            "folder_bytes": folder_bytes(folder),
            "compressed_bytes": compressed_bytes(folder) if measure else None}  # gzip -6 of the folder
    (dist / "build-info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    compressed = f", {info['compressed_bytes'] / 2**20:.0f} MiB compressed" if measure else ""
    print(f"{folder}: {info['folder_bytes'] / 2**20:.0f} MiB{compressed}, built in {info['seconds']:.0f} s")
    return folder


def build_deb(variant: str) -> Path:
    """A .deb that installs the folder bundle under /opt/llamadesk, with a launcher, desktop entry and metainfo."""
    bundle = DIST / variant / "LlamaDesk"
    if not bundle.is_dir():
        raise SystemExit(f"build the {variant} bundle first: {bundle} does not exist")
    render_icons()
    stage = BUILD / f"deb-{variant}"
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(bundle, stage / "opt" / "llamadesk", symlinks=True)
    (stage / "usr" / "bin").mkdir(parents=True)
    (stage / "usr" / "bin" / "llamadesk").symlink_to("/opt/llamadesk/LlamaDesk")
    linux = ROOT / "packaging" / "linux"
    app_id = "io.github.llamadesk.LlamaDesk"
    for source, target in ((linux / f"{app_id}.desktop", f"usr/share/applications/{app_id}.desktop"),
                           (linux / f"{app_id}.metainfo.xml", f"usr/share/metainfo/{app_id}.metainfo.xml"),
                           (ROOT / "packaging" / "icons" / "llamadesk.svg",
                            f"usr/share/icons/hicolor/scalable/apps/{app_id}.svg")):
        (stage / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, stage / target)
    for size in (256, 128, 64, 48, 32):
        target = stage / f"usr/share/icons/hicolor/{size}x{size}/apps/{app_id}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(BUILD / "icons" / f"llamadesk-{size}.png", target)
    control = (linux / "deb-control").read_text(encoding="utf-8").format(
        version=version(), installed_kib=folder_bytes(stage) // 1024,
        edition="offline edition: the engine is included" if variant == "full" else
        "the engine is set up on first run")
    (stage / "DEBIAN").mkdir()
    (stage / "DEBIAN" / "control").write_text(control, encoding="utf-8")
    out = DIST / f"llamadesk-{variant}_{version()}_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z6", "--build", str(stage), str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"{out}: {out.stat().st_size / 2**20:.0f} MiB")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("thin", "full", "deb"))
    parser.add_argument("--variant", choices=("thin", "full"), default="full", help="the bundle a .deb packs")
    parser.add_argument("--no-measure", action="store_true", help="skip the compressed-size measurement")
    args = parser.parse_args()
    if args.what == "deb":
        build_deb(args.variant)
    else:
        build_bundle(args.what, measure=not args.no_measure)


if __name__ == "__main__":
    main()
