#!/usr/bin/env bash
# An AppImage from a PyInstaller folder bundle (release runner: it downloads appimagetool).
# Usage: packaging/linux/build_appimage.sh dist/thin/LlamaDesk
set -euo pipefail
BUNDLE=${1:?path to the LlamaDesk folder bundle}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VERSION=$(cd "$ROOT" && python -c "import engine; print(engine.__version__)")
APPDIR="$ROOT/build/LlamaDesk.AppDir"
ID=io.github.llamadesk.LlamaDesk

rm -rf "$APPDIR"
mkdir -p "$APPDIR/usr/share/applications" "$APPDIR/usr/share/metainfo" "$APPDIR/usr/share/icons/hicolor/256x256/apps"
cp -a "$BUNDLE" "$APPDIR/usr/lib-llamadesk"
cp "$HERE/$ID.desktop" "$APPDIR/usr/share/applications/" && cp "$HERE/$ID.desktop" "$APPDIR/"
cp "$HERE/$ID.metainfo.xml" "$APPDIR/usr/share/metainfo/"
cp "$ROOT/build/icons/llamadesk-256.png" "$APPDIR/usr/share/icons/hicolor/256x256/apps/$ID.png"
cp "$ROOT/build/icons/llamadesk-256.png" "$APPDIR/$ID.png"
cat > "$APPDIR/AppRun" <<'RUN'
#!/bin/sh
HERE=$(dirname "$(readlink -f "$0")")
exec "$HERE/usr/lib-llamadesk/LlamaDesk" "$@"
RUN
chmod +x "$APPDIR/AppRun"

TOOL="$ROOT/build/appimagetool"
if [ ! -x "$TOOL" ]; then
    curl -fsSL -o "$TOOL" https://github.com/AppImage/appimagetool/releases/download/continuous/appimagetool-x86_64.AppImage
    chmod +x "$TOOL"
fi
ARCH=x86_64 "$TOOL" --appimage-extract-and-run "$APPDIR" "$ROOT/dist/LlamaDesk-$VERSION-x86_64.AppImage"
