#!/usr/bin/env bash
# Signs the PyInstaller .app with the hardened runtime, builds the DMG, notarizes and staples it.
# Needs (release runner secrets): MACOS_SIGN_IDENTITY ("Developer ID Application: …"), NOTARY_PROFILE (a
# `xcrun notarytool store-credentials` profile). Usage: packaging/macos/sign_and_notarize.sh dist/thin/LlamaDesk.app
set -euo pipefail
APP=${1:?path to LlamaDesk.app}
HERE=$(cd "$(dirname "$0")" && pwd)
VERSION=$(python -c "import engine; print(engine.__version__)")
DMG="dist/LlamaDesk-${VERSION}.dmg"

# Inner binaries first, then the bundle: codesign --deep does not apply entitlements to nested code.
find "$APP/Contents" -type f \( -name "*.dylib" -o -name "*.so" -o -perm -111 \) -print0 |
    xargs -0 -n 50 codesign --force --timestamp --options runtime --entitlements "$HERE/entitlements.plist" \
        --sign "$MACOS_SIGN_IDENTITY"
codesign --force --timestamp --options runtime --entitlements "$HERE/entitlements.plist" \
    --sign "$MACOS_SIGN_IDENTITY" "$APP"
codesign --verify --strict --verbose=2 "$APP"

dmgbuild -s "$HERE/dmg_settings.py" -D app="$APP" "LlamaDesk" "$DMG"
codesign --force --timestamp --sign "$MACOS_SIGN_IDENTITY" "$DMG"
xcrun notarytool submit "$DMG" --keychain-profile "$NOTARY_PROFILE" --wait
xcrun stapler staple "$DMG"
spctl --assess --type open --context context:primary-signature --verbose "$DMG"
